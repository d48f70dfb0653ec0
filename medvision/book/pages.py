"""What a chapter calls to place itself in a build: where its runs go, the banner at its top, the build's
timings so far, and a benchmark script run in a fresh process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import medvision
from medvision.book.profiles import GENERATED, find_repo_root
from medvision.core import run_log


def run_record(root: Path | None = None) -> dict:
    """The timings written so far by the current book run (``$MEDVISION_RUN_RECORD``, set by the runner), or
    by the last run in ``book/generated/_run.json``; each chapter's ``runs`` counts the training runs it
    trained and reused (:mod:`medvision.core.run_log`)."""
    env = os.environ.get(run_log.RECORD_VAR)
    path = Path(env) if env else (root or find_repo_root()) / GENERATED / "_run.json"
    record = json.loads(path.read_text()) if path.is_file() else {"notebooks": {}}
    for nb, facts in record["notebooks"].items():
        facts["runs"] = run_log.chapter_runs(path, nb)
    return record


def run_bench(script: str, *args: str, root: Path | None = None) -> dict:
    """Run ``bench/<script>.py --json`` in a fresh process and return the JSON it wrote."""
    import tempfile

    root = root or find_repo_root()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        done = subprocess.run([sys.executable, str(root / "bench" / f"{script}.py"), *args, "--json", str(out)],
                              cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"bench/{script}.py failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        return json.loads(out.read_text())


def runs_dir(profile: str, dataset: str, override: str = "") -> Path:
    """Where a chapter's run directories go: ``override`` if given, else ``$MEDVISION_RUNS/<profile>/<dataset>``,
    else ``<repo>/runs/<profile>/<dataset>`` (``./runs/...`` outside a checkout)."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get("MEDVISION_RUNS"):  # make test points this at a fresh folder
        return Path(os.environ["MEDVISION_RUNS"]).expanduser().resolve() / profile / dataset
    try:
        base = find_repo_root()
    except FileNotFoundError:
        base = Path.cwd()
    return base / "runs" / profile / dataset


def run_banner(profile: str, **facts: object):
    """A Markdown block for the top of a results page: profile, data, model, seed; smoke runs flagged.

    Returns an ``IPython.display.Markdown`` object so notebooks show it as their output.
    """
    from IPython.display import Markdown

    lines = []
    if profile == "smoke":
        lines.append("> **Smoke profile.** This page was produced by the tiny settings used by tests and CI. "
                     "It shows that the pipeline runs; its numbers are not results. Build the book with "
                     "`make book` (default profile) for real ones.")
        lines.append(">")
    facts_text = "; ".join(f"{k.replace('_', ' ')}: `{v}`" for k, v in facts.items())
    lines.append(f"> Produced by the **{profile}** profile — {facts_text}.")
    lines.append(">")
    lines.append(f"> *{medvision.DISCLAIMER}*")
    return Markdown("\n".join(lines))
