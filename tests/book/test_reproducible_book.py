"""The same profile and seed give the same book numbers: the training chapter executed twice (smoke
parameters, fresh run directories each time) shows identical metrics, splits and sentences."""

import json
import re
from pathlib import Path

import pytest

from medvision.book.notebooks import ensure_kernel, execute_notebook
from medvision.book.profiles import chapter_parameters, load_profile

REPO = Path(__file__).resolve().parents[2]
CHAPTER = "02_training_strategies"


def _texts(executed: Path) -> list[str]:
    """Every text and Markdown output, with wall-clock timings (which do vary) masked."""
    nb = json.loads(executed.read_text())
    out = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            text = data.get("text/markdown") or o.get("text")
            if text is None and "text/plain" in data and "s_per_epoch" not in "".join(data["text/plain"]):
                text = data["text/plain"]
            if text:
                text = "".join(text) if isinstance(text, list) else text
                out.append(re.sub(r"The cheapest run per epoch is .*?s/epoch\)\.", "<timing>", text))
    return out


@pytest.mark.slow
def test_training_chapter_gives_identical_numbers_twice(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    ensure_kernel()
    params = {**chapter_parameters(load_profile("smoke", REPO), CHAPTER), "profile": "smoke"}
    runs = {}
    for name in ("first", "second"):
        runs[name] = tmp_path / f"runs-{name}"
        execute_notebook(REPO / "notebooks" / f"{CHAPTER}.ipynb", tmp_path / f"{name}.ipynb",
                         {**params, "runs_dir": str(runs[name])}, cwd=REPO / "notebooks")
    first, second = _texts(tmp_path / "first.ipynb"), _texts(tmp_path / "second.ipynb")
    assert len(first) >= 3 and first == second
    names = sorted(p.name for p in runs["first"].iterdir() if (p / "summary.json").is_file())
    assert names and names == sorted(p.name for p in runs["second"].iterdir() if (p / "summary.json").is_file())
    for name in names:
        a, b = (json.loads((runs[k] / name / "summary.json").read_text()) for k in ("first", "second"))
        assert (a["val"], a["test"], a["best_epoch"]) == (b["val"], b["test"], b["best_epoch"]), name
        assert (runs["first"] / name / "split.csv").read_bytes() == (runs["second"] / name / "split.csv").read_bytes()
