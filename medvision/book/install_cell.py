"""The one-line-per-step install cell every chapter opens with, generated from ``pyproject.toml``.

Opened in Colab or a fresh Jupyter, a chapter must install medvision before its first import. The cell does
nothing where medvision is installed; inside a clone it installs that clone (``pip install -e``); elsewhere it
installs from the repository named in ``[project.urls] Repository`` of ``pyproject.toml`` — the one place
that names it — and, where none is named, stops with a message that says how to get a clone. ``make sync``
writes the cell into every notebook and ``make lint`` checks that each notebook carries the current one, so
no cell ever points at an address the project does not have.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: Tag of the install cell (the book runner and nbval never execute it).
INSTALL_TAG = "install"
TAGS = [INSTALL_TAG, "nbval-skip", "remove-cell"]

_TEMPLATE = '''\
# Colab or a fresh Jupyter: install medvision if it is missing (a no-op where it is installed; skipped by the book runner and nbval).
import importlib.util, pathlib, subprocess, sys  # noqa: E401, I001
REPOSITORY = {repository}  # [project.urls] Repository of pyproject.toml (written by `make sync`)
if importlib.util.find_spec("medvision") is None:
    here = pathlib.Path.cwd().resolve()
    clone = next((p for p in (here, *here.parents) if (p / "pyproject.toml").is_file() and (p / "medvision" / "__init__.py").is_file()), None)
    if clone is None and not REPOSITORY:
        raise RuntimeError("medvision is not installed and this notebook is not inside a medvision clone: clone the repository, then open the chapter from its notebooks/ folder (README: Opening a chapter)")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "-e", str(clone)] if clone else [sys.executable, "-m", "pip", "install", "-q", f"medvision @ git+{{REPOSITORY}}"])
'''


def repository_url(root: Path) -> str:
    """``[project.urls] Repository`` of ``root/pyproject.toml``, or ``""`` where it names none."""
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    if sys.version_info >= (3, 11):
        import tomllib

        urls = tomllib.loads(text).get("project", {}).get("urls", {})
        return str(urls.get("Repository", ""))
    from importlib.metadata import (  # Python 3.10: the installed metadata
        PackageNotFoundError,
        metadata,
    )

    try:
        entries = metadata("medvision").get_all("Project-URL") or []
    except PackageNotFoundError:
        return ""
    return next((url.strip() for label, _, url in (e.partition(",") for e in entries)
                 if label.strip() == "Repository"), "")


def install_cell_source(repository: str) -> str:
    """The install cell's code for ``repository`` (``""``: none is published)."""
    return _TEMPLATE.format(repository=json.dumps(repository)).rstrip("\n")


def write_install_cells(folder: Path, repository: str) -> list[Path]:
    """Make the first code cell of every ``folder/*.ipynb`` the current install cell; return the notebooks
    that changed (their ``.py`` twins follow with ``jupytext --sync``)."""
    import nbformat

    changed = []
    source = install_cell_source(repository)
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        if code and INSTALL_TAG in code[0].metadata.get("tags", []):
            cell = code[0]
        else:
            cell = nbformat.v4.new_code_cell()
            nb.cells.insert(nb.cells.index(code[0]) if code else len(nb.cells), cell)
        if cell.source != source or cell.metadata.get("tags") != TAGS:
            cell.source, cell.metadata["tags"] = source, list(TAGS)
            nbformat.write(nb, path)
            changed.append(path)
    return changed
