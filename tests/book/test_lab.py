"""JupyterLab, as `make lab` starts it, opens a chapter (its py:percent twin too) and runs its first cells with
the ``medvision`` kernel: checked through the server's REST API and the kernel's websocket, on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytest.importorskip("jupyterlab")
websocket = pytest.importorskip("tornado.websocket")

REPO = Path(__file__).resolve().parents[2]
TOKEN = uuid.uuid4().hex


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{base}{path}", method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A headless JupyterLab on a free loopback port, rooted at the repository (as `make lab`)."""
    port = _free_port()
    home = tmp_path_factory.mktemp("lab-home")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "MPLBACKEND": "Agg"}
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
                             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
                             f"--ServerApp.root_dir={REPO}", "--ServerApp.open_browser=False", "--allow-root"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            _api(base, "/api/status")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"JupyterLab did not start: {proc.stderr.read()[-2000:]}")
            time.sleep(0.5)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _execute(base: str, kernel_id: str, code: str) -> tuple[str, str]:
    """Run ``code`` in the kernel over its websocket; return (status, stdout)."""
    from tornado.ioloop import IOLoop

    async def run() -> tuple[str, str]:
        url = f"{base.replace('http', 'ws')}/api/kernels/{kernel_id}/channels?token={TOKEN}"
        conn = await websocket.websocket_connect(url)
        msg_id = uuid.uuid4().hex
        conn.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex,
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        stdout, status, idle = [], None, False
        while status is None or not idle:
            raw = await conn.read_message()
            assert raw is not None, "the kernel's websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream" and msg["content"]["name"] == "stdout":
                stdout.append(msg["content"]["text"])
            elif kind == "error":
                stdout.append("\n".join(msg["content"]["traceback"]))
            elif kind == "execute_reply":
                status = msg["content"]["status"]
            idle = idle or (kind == "status" and msg["content"]["execution_state"] == "idle")
        conn.close()
        return status, "".join(stdout)

    return IOLoop.current().run_sync(run, timeout=120)


@pytest.mark.slow
def test_lab_opens_a_chapter_and_runs_its_first_cells_with_the_medvision_kernel(lab):
    specs = _api(lab, "/api/kernelspecs")["kernelspecs"]
    assert "medvision" in specs, f"the medvision kernel is not registered: {sorted(specs)}"
    twin = _api(lab, "/api/contents/notebooks/01_eda.py?content=1")
    assert twin["type"] == "notebook", "the py:percent twin does not open as a notebook (jupytext)"
    chapter = _api(lab, "/api/contents/notebooks/01_eda.ipynb?content=1")
    assert chapter["content"]["metadata"]["kernelspec"]["name"] == "medvision"
    code = [c for c in chapter["content"]["cells"] if c["cell_type"] == "code"]
    assert [c["source"] for c in code[:2]] == [c["source"] for c in twin["content"]["cells"]
                                               if c["cell_type"] == "code"][:2]
    session = _api(lab, "/api/sessions", {"path": "notebooks/01_eda.ipynb", "type": "notebook", "name": "01_eda",
                                          "kernel": {"name": "medvision"}})
    assert session["kernel"]["name"] == "medvision"
    kernel = session["kernel"]["id"]
    status, out = _execute(lab, kernel, code[0]["source"])  # the install cell: a no-op where medvision is installed
    assert status == "ok", out
    status, out = _execute(lab, kernel, code[1]["source"] + "\nimport medvision\nprint(profile, medvision.__version__)")
    assert status == "ok", out
    assert out.split() == ["default", __import__("medvision").__version__]  # the settings `make book` runs
