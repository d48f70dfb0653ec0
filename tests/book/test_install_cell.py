"""The notebooks' install cell: what it runs installed, inside a clone and outside one (no network: pip is
never called, the command it would run is checked)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import nbformat
import pytest

from medvision.book.install_cell import (
    INSTALL_TAG,
    install_cell_source,
    repository_url,
    write_install_cells,
)
from medvision.book.notebooks import check_notebooks

REPO = Path(__file__).resolve().parents[2]


def run_cell(source: str, cwd: Path, installed: bool, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Execute the cell's code in ``cwd`` with ``medvision`` (not) importable; return the pip commands."""
    calls: list[list[str]] = []
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (real(name, *a) if installed else None) if name == "medvision" else real(name, *a))
    monkeypatch.setattr(subprocess, "check_call", lambda cmd, *a, **k: calls.append(list(cmd)) or 0)
    monkeypatch.chdir(cwd)
    exec(compile(source, "install-cell", "exec"), {})
    return calls


def test_installed_does_nothing(tmp_path, monkeypatch):
    assert run_cell(install_cell_source(""), tmp_path, True, monkeypatch) == []


def test_inside_a_clone_installs_that_clone(monkeypatch):
    calls = run_cell(install_cell_source(""), REPO / "notebooks", False, monkeypatch)
    assert len(calls) == 1 and calls[0][-2:] == ["-e", str(REPO)]
    assert not any("git+" in part for part in calls[0])


def test_outside_a_clone_uses_the_named_repository(tmp_path, monkeypatch):
    calls = run_cell(install_cell_source("https://example.org/team/medvision"), tmp_path, False, monkeypatch)
    assert calls == [[calls[0][0], "-m", "pip", "install", "-q",
                      "medvision @ git+https://example.org/team/medvision"]]


def test_outside_a_clone_without_a_repository_says_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(RuntimeError, match="not inside a medvision clone.*clone the repository"):
        run_cell(install_cell_source(""), tmp_path, False, monkeypatch)


def test_every_notebook_carries_the_cell_pyproject_gives():
    source = install_cell_source(repository_url(REPO))
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        assert INSTALL_TAG in first.metadata["tags"] and first.source == source, path
        assert "github.com/medvision/medvision" not in path.read_text()


def test_write_and_check_follow_pyproject(tmp_path):
    (tmp_path / "notebooks").mkdir()
    for path in (REPO / "notebooks").glob("01_eda.*"):
        (tmp_path / "notebooks" / path.name).write_bytes(path.read_bytes())
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "[project.urls]\n" in pyproject
    (tmp_path / "pyproject.toml").write_text(
        pyproject.replace("[project.urls]\n", '[project.urls]\nRepository = "https://example.org/team/medvision"\n'))
    assert repository_url(tmp_path) == "https://example.org/team/medvision"
    assert any("install cell is not the one" in p for p in check_notebooks(tmp_path / "notebooks"))
    assert write_install_cells(tmp_path / "notebooks", repository_url(tmp_path)) == [tmp_path / "notebooks" / "01_eda.ipynb"]
    assert write_install_cells(tmp_path / "notebooks", repository_url(tmp_path)) == []  # idempotent
