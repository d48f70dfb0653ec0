"""Launch buttons: written from [project.urls] Repository, absent while none is declared, and opening the paired
source under notebooks/ (the executed copies under book/generated/ are not in git)."""

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from medvision.book.install_cell import repository_url
from medvision.book.launch import (
    BEGIN,
    check_launch_block,
    launch_block,
    retarget,
    source_notebook,
    write_launch_block,
)

REPO = Path(__file__).resolve().parents[2]
URL = "https://github.com/medvision-dev/medvision"


def test_no_buttons_while_no_repository_is_declared_and_the_repositorys_config_matches():
    assert "launch_buttons" not in launch_block("") and "none is declared" in launch_block("")
    assert "launch_buttons" not in launch_block("https://example.org/x.git")  # Colab and Binder cannot open it
    assert check_launch_block(REPO / "_config.yml", repository_url(REPO)) == []


def test_make_sync_writes_the_block_and_lint_notices_a_stale_one(tmp_path):
    config = tmp_path / "_config.yml"
    shutil.copy(REPO / "_config.yml", config)
    assert write_launch_block(config, URL + ".git")
    text = config.read_text()
    assert f"url: {URL}\n" in text and "colab_url: https://colab.research.google.com" in text
    assert "notebook_interface: jupyterlab" in text and text.count(BEGIN) == 1
    assert not write_launch_block(config, URL)  # idempotent
    assert check_launch_block(config, URL) == [] and check_launch_block(config, "")[0].endswith("run `make sync`")
    config.write_text("title: x\n")
    assert "no launch-button block" in check_launch_block(config, URL)[0]


def test_pages_map_to_their_sources():
    assert source_notebook("book/generated/02_training_strategies") == "notebooks/02_training_strategies.ipynb"
    assert source_notebook("book/generated/systems/ham10000/03_per_class_analysis") == \
        "notebooks/03_per_class_analysis.ipynb"
    assert source_notebook("book/intro") == "" and source_notebook("book/generated/systems/ham10000") == ""
    buttons = [{"type": "group", "buttons": [
        {"type": "link", "url": "https://colab.research.google.com/github/o/r/blob/main/book/generated/02_x.ipynb"},
        {"type": "link", "url": "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/book/generated/02_x.ipynb"}]},
        {"type": "link", "url": "https://github.com/o/r"},
        {"type": "group", "buttons": [{"type": "link", "url": "../../_sources/book/generated/02_x.ipynb"}]}]
    assert retarget(buttons, "book/generated/02_x.ipynb", "notebooks/02_x.ipynb") == 2
    assert buttons[2]["buttons"][0]["url"] == "../../_sources/book/generated/02_x.ipynb"  # the download stays
    assert buttons[0]["buttons"][0]["url"].endswith("/blob/main/notebooks/02_x.ipynb")
    assert buttons[0]["buttons"][1]["url"].endswith("urlpath=lab/tree/notebooks/02_x.ipynb")


@pytest.mark.slow
def test_a_built_chapter_launches_its_source_in_colab_and_binder(tmp_path):
    """A one-chapter book with a repository declared, built by jupyter-book: the chapter's launch links open
    notebooks/<chapter>.ipynb, and a plain page has none."""
    from medvision.book.build import build_html

    book = tmp_path / "book"
    (book / "book" / "generated").mkdir(parents=True)
    shutil.copy(REPO / "_config.yml", book / "_config.yml")
    (book / "book" / "_static").mkdir()
    shutil.copy(REPO / "book" / "_static" / "medvision.css", book / "book" / "_static")
    shutil.copy(REPO / "book" / "references.bib", book / "book")
    write_launch_block(book / "_config.yml", URL)
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   "  - file: book/generated/02_training_strategies\n")
    (book / "book" / "intro.md").write_text("# Intro\n\nA page.\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Training strategies"),
                                         nbformat.v4.new_code_cell("1 + 1")])
    nb.metadata["kernelspec"] = {"name": "medvision", "display_name": "Python (medvision)", "language": "python"}
    nbformat.write(nb, book / "book" / "generated" / "02_training_strategies.ipynb")
    index = build_html(book)
    chapter = (index.parent / "book" / "generated" / "02_training_strategies.html").read_text()
    assert ("https://colab.research.google.com/github/medvision-dev/medvision/blob/main/notebooks/"
            "02_training_strategies.ipynb") in chapter
    assert "urlpath=lab/tree/notebooks/02_training_strategies.ipynb" in chapter
    launches = re.findall(r'href="(https://(?:colab\.research\.google\.com|mybinder\.org)[^"]+)"', chapter)
    assert len(launches) == 2 and not [u for u in launches if "book/generated" in u]
    assert "_sources/book/generated/02_training_strategies.ipynb" in chapter  # the download button is untouched
    assert (index.parent / "_sources" / "book" / "generated" / "02_training_strategies.ipynb").is_file()
    assert "colab.research.google.com" not in (index.parent / "book" / "intro.html").read_text()
