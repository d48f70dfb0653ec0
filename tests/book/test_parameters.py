"""Stored parameters are the build's (default profile; Evidence: its profile); tests inject the smoke profile's."""

from pathlib import Path

import jupytext
import nbformat
import pytest

from medvision.book.parameters import (
    Parameter,
    cell_source,
    check_parameter_cells,
    literal,
    parse_cell,
    profile_values,
    smoke_copies,
    stored_profile,
    unset_by,
)

REPO = Path(__file__).resolve().parents[2]


def _cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))


def test_every_chapter_stores_the_settings_of_the_profile_that_builds_it():
    assert check_parameter_cells(REPO / "notebooks", REPO) == []
    assert stored_profile("02_training_strategies", REPO) == "default"
    assert stored_profile("08_label_budget", REPO) == "evidence"  # the default build leaves the Evidence part out
    stored = {p.name: p.value for p in parse_cell(_cell(REPO / "notebooks" / "02_training_strategies.ipynb"))}
    assert stored["profile"] == "default" and stored["max_train_samples"] == 0
    assert stored["overrides"] == profile_values("default", "02_training_strategies", REPO)["overrides"]
    assert stored["overrides"]["experiment"]["pretrained"] == "package"  # real weights, not a smoke setting
    twin = jupytext.read(REPO / "notebooks" / "02_training_strategies.py")  # the .py twin says the same
    assert next(c.source for c in twin.cells if "parameters" in c.metadata.get("tags", [])) == \
        _cell(REPO / "notebooks" / "02_training_strategies.ipynb")


def test_cells_are_typed_literals_with_comments_and_long_mappings_spread_over_lines():
    params = [Parameter("profile", "str", "default", "who ran it"), Parameter("flag", "bool", False, ""),
              Parameter("overrides", "dict", {"experiment": {"image_size": 64, "backbone": "x" * 80},
                                              "strategies": ["head_only"]}, "RunConfig overrides")]
    source = cell_source(params)
    assert source.splitlines()[0] == 'profile: str = "default"  # who ran it'
    assert "flag: bool = False" in source and 'overrides: dict = {  # RunConfig overrides' in source
    assert parse_cell(source) == params and cell_source(parse_cell(source)) == source
    assert literal({"a": [1, 2.5, None, True]}) == '{"a": [1, 2.5, None, True]}'
    with pytest.raises(ValueError, match="name: type = literal"):
        parse_cell("import os")


def test_a_stale_cell_is_reported(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.read(REPO / "notebooks" / "01_eda.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = cell.source.replace('profile: str = "default"', 'profile: str = "smoke"')
    nbformat.write(nb, folder / "01_eda.ipynb")
    [problem] = check_parameter_cells(folder, REPO)
    assert "01_eda.ipynb" in problem and "default profile's settings" in problem and "make sync" in problem


def test_the_tests_run_copies_with_the_smoke_parameters_injected(tmp_path):
    copies = smoke_copies(REPO, tmp_path)
    assert [c.name for c in copies] == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    for copy in copies:
        nb = nbformat.read(copy, as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and 'profile = "smoke"' in injected[0].source, copy.name
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")  # prepared, not executed
    eda = nbformat.read(tmp_path / "01_eda.ipynb", as_version=4)
    injected = next(c for c in eda.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "max_stats_images = 200" in injected.source  # the smoke profile's value, not the stored 2000


def test_the_smoke_profile_sets_every_parameter_a_stored_profile_sets():
    """Otherwise make test's smoke runs (nbval copies and the smoke book) would take the default or evidence
    profile's data sets and sizes from the stored cell."""
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert unset_by("smoke", path.stem, REPO) == [], path.stem
    assert profile_values("smoke", "08_label_budget", REPO)["datasets"] == []
