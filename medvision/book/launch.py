"""Launch buttons (Colab, JupyterLab on Binder) on the book's chapters, from ``[project.urls] Repository``.

Jupyter Book 1 builds a chapter's launch links from the page's path in the book. medvision's pages are the
executed copies under ``book/generated/`` (not in git), so links built that way would open nothing. This module
is also a Sphinx extension (``_config.yml`` loads it): after the theme has built the links it points each at
the chapter's paired source under ``notebooks/``, which is in git and opens with the stored parameters.

``make sync`` writes the ``repository`` and ``launch_buttons`` settings into a marked block of ``_config.yml``
from ``pyproject.toml`` (:func:`write_launch_block`); while no Repository is declared the block holds none, so
the book shows no button that would lead nowhere. ``make lint`` checks that the block matches
(:func:`check_launch_block`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: The marked block of ``_config.yml`` that ``make sync`` owns.
BEGIN = "# >>> launch buttons: written by `make sync` from pyproject.toml's [project.urls] Repository"
END = "# <<< launch buttons"

#: Hosts whose repositories Colab and Binder can open.
HOSTS = ("https://github.com/", "https://gitlab.com/")

#: Where the executed chapters sit in the book, and where their sources sit in the repository.
GENERATED_PAGE = re.compile(r"^book/generated/(?:systems/[^/]+/)?(?P<chapter>\d\d_[A-Za-z0-9_]+)$")
SOURCES = "notebooks"


def launch_block(repository: str, branch: str = "main") -> str:
    """The ``_config.yml`` block for ``repository`` (``""``: none declared, no buttons)."""
    url = repository.strip().removesuffix(".git").rstrip("/")
    if not url.startswith(HOSTS):
        why = ("none is declared" if not url else f"{url} is not on GitHub or GitLab, which Colab and Binder open")
        return "\n".join([BEGIN, f"# No launch buttons: {why}.", END])
    return "\n".join([BEGIN, "repository:", f"  url: {url}", f"  branch: {branch}", "launch_buttons:",
                      "  notebook_interface: jupyterlab", "  binderhub_url: https://mybinder.org",
                      "  colab_url: https://colab.research.google.com", END])


def _split(text: str, path: Path) -> tuple[str, str, str]:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no launch-button block (a line '{BEGIN}' ... '{END}'); add one")
    return text[:start], text[start:end + len(END)], text[end + len(END):]


def write_launch_block(config: Path, repository: str) -> bool:
    """Write the block for ``repository`` into ``config`` (``_config.yml``); True when it changed."""
    text = config.read_text(encoding="utf-8")
    before, block, after = _split(text, config)
    wanted = launch_block(repository)
    if block == wanted:
        return False
    config.write_text(before + wanted + after, encoding="utf-8")
    return True


def check_launch_block(config: Path, repository: str) -> list[str]:
    """Problems with ``config``'s block (empty when it is the one ``repository`` gives)."""
    try:
        _, block, _ = _split(config.read_text(encoding="utf-8"), config)
    except ValueError as exc:
        return [str(exc)]
    if block != launch_block(repository):
        return [f"{config}: the launch buttons are not the ones pyproject.toml's [project.urls] gives: run `make sync`"]
    return []


def source_notebook(pagename: str) -> str:
    """The paired source of an executed chapter page (``book/generated/02_training_strategies`` and a seed
    system's ``book/generated/systems/ham10000/02_training_strategies`` → ``notebooks/02_training_strategies
    .ipynb``); ``""`` for any other page."""
    found = GENERATED_PAGE.match(pagename)
    return f"{SOURCES}/{found['chapter']}.ipynb" if found else ""


def retarget(buttons: list[Any], page_path: str, source: str) -> int:
    """Replace ``page_path`` (the page's path in the repository, as the theme put it in its launch links) with
    ``source`` in every launch link of ``buttons`` (the theme's ``header_buttons``, groups included): absolute
    ``http(s)`` addresses only, so the download buttons (relative links to the built page's own ``_sources/``
    copy) are left alone. Returns how many links changed."""
    changed = 0
    for button in buttons:
        if not isinstance(button, dict):
            continue
        changed += retarget(button.get("buttons", []), page_path, source)
        url = button.get("url")
        if isinstance(url, str) and url.startswith(("https://", "http://")) and page_path in url:
            button["url"] = url.replace(page_path, source)
            changed += 1
    return changed


def _retarget_page(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    source = source_notebook(pagename)
    if not source or not context.get("header_buttons"):
        return
    book = str(app.config["html_theme_options"].get("path_to_docs", "")).strip("/")
    page_path = f"{book}/{pagename}.ipynb" if book else f"{pagename}.ipynb"
    retarget(context["header_buttons"], page_path, source)


def setup(app) -> dict:
    """Sphinx extension: after the theme's launch buttons (priority 500), point them at ``notebooks/``."""
    app.connect("html-page-context", _retarget_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
