"""The parameters cell every chapter stores, and the smoke copies the tests run.

A chapter's ``parameters`` cell (typed literals with comments, papermill's convention) holds the settings of the
profile that builds it: ``default`` for the chapters ``make book`` runs, and for a part the default build leaves
out (the Evidence chapters) the profile that builds that part. So a chapter opened in JupyterLab and run, or run
by ``papermill notebooks/01_eda.ipynb out.ipynb -p config breastmnist``, trains and reports what the book shows,
and its banner names the profile whose settings ran. ``make sync`` writes the cells (:func:`write_parameter_cells`)
and ``make lint`` checks them (:func:`check_parameter_cells`).

Tests never rely on stored defaults: ``make test`` runs nbval on copies into which papermill injected the smoke
profile's parameters (:func:`smoke_copies`).
"""

from __future__ import annotations

import ast
import io
import json
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medvision.book.profiles import chapter_parameters, load_profile

#: The profile whose settings a chapter stores when ``make book`` runs it.
STORED_PROFILE = "default"

#: Profiles searched, in order, for a chapter the default build leaves out.
FALLBACK_PROFILES = ("evidence", "cpu")

#: The profile the tests inject.
TEST_PROFILE = "smoke"

#: Longest line a parameter is written on before its mapping is spread over several lines.
WIDTH = 110


@dataclass(frozen=True)
class Parameter:
    """One line (or statement) of a parameters cell: ``name: annotation = value  # comment``."""

    name: str
    annotation: str
    value: Any
    comment: str


def parse_cell(source: str) -> list[Parameter]:
    """The parameters of a cell's source (annotated assignments of literals, each with its comment).

    Raises:
        ValueError: a statement is not ``name: type = literal``.
    """
    tree = ast.parse(source)
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments.setdefault(tok.start[0], tok.string.lstrip("#").strip())
    out = []
    for node in tree.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None):
            raise ValueError(f"a parameters cell holds `name: type = literal` lines only, not {ast.unparse(node)!r}")
        comment = next((comments[n] for n in range(node.lineno, (node.end_lineno or node.lineno) + 1)
                        if n in comments), "")
        out.append(Parameter(node.target.id, ast.unparse(node.annotation), ast.literal_eval(node.value), comment))
    return out


def literal(value: Any) -> str:
    """``value`` as a Python literal on one line, strings in double quotes (as the chapters write them)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"a parameter must be a literal (str, number, bool, list, dict), not {type(value).__name__}")


def cell_source(parameters: list[Parameter]) -> str:
    """The cell's source: one line per parameter, a long mapping spread one key per line."""
    lines = []
    for p in parameters:
        comment = f"  # {p.comment}" if p.comment else ""
        line = f"{p.name}: {p.annotation} = {literal(p.value)}{comment}"
        if len(line) > WIDTH and isinstance(p.value, dict) and p.value:
            lines.append(f"{p.name}: {p.annotation} = {{{comment}")
            lines += [f"    {literal(k)}: {literal(v)}," for k, v in p.value.items()]
            lines.append("}")
        else:
            lines.append(line)
    return "\n".join(lines)


def stored_profile(notebook: str, root: Path) -> str:
    """The profile whose settings ``notebook`` stores: :data:`STORED_PROFILE` if it runs the chapter, else the
    first of :data:`FALLBACK_PROFILES` that does."""
    for name in (STORED_PROFILE, *FALLBACK_PROFILES):
        if notebook in load_profile(name, root)["notebooks"]:
            return name
    raise ValueError(f"no profile of {[STORED_PROFILE, *FALLBACK_PROFILES]} runs {notebook}")


def profile_values(profile: str, notebook: str, root: Path) -> dict[str, Any]:
    """What ``profile`` gives ``notebook``: its papermill parameters, ``profile`` included."""
    return {**chapter_parameters(load_profile(profile, root), notebook), "profile": profile}


def stored_source(current: str, notebook: str, root: Path) -> str:
    """``current`` (a parameters cell) with every value the stored profile sets replaced by that value."""
    values = profile_values(stored_profile(notebook, root), notebook, root)
    params = parse_cell(current)
    unknown = sorted(set(values) - {p.name for p in params})
    if unknown:
        raise ValueError(f"notebooks/{notebook}.ipynb's parameters cell lacks {unknown}, which a profile sets")
    return cell_source([Parameter(p.name, p.annotation, values.get(p.name, p.value), p.comment) for p in params])


def _parameters_cell(nb, path: Path):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path} needs exactly one cell tagged 'parameters'")
    return cells[0]


def write_parameter_cells(folder: Path, root: Path) -> list[Path]:
    """Write the stored profile's settings into the parameters cell of every ``folder/*.ipynb``; returns the
    notebooks that changed (their ``.py`` twins follow with ``jupytext --sync``)."""
    import nbformat

    changed = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cell = _parameters_cell(nb, path)
        wanted = stored_source(cell.source, path.stem, root)
        if cell.source != wanted:
            cell.source = wanted
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def check_parameter_cells(folder: Path, root: Path) -> list[str]:
    """Problems with the stored parameters (empty when every chapter stores its profile's settings)."""
    import nbformat

    problems = []
    for path in sorted(folder.glob("*.ipynb")):
        try:
            cell = _parameters_cell(nbformat.read(path, as_version=4), path)
            if cell.source != stored_source(cell.source, path.stem, root):
                problems.append(f"{path}: the parameters cell does not hold the "
                                f"{stored_profile(path.stem, root)} profile's settings: run `make sync`")
        except (ValueError, SyntaxError) as exc:
            problems.append(f"{path}: {exc}")
    return problems


def unset_by(profile: str, notebook: str, root: Path) -> list[str]:
    """The parameters the stored profile sets for ``notebook`` and ``profile`` does not: a run under ``profile``
    would take them from the stored (heavier) settings."""
    stored = profile_values(stored_profile(notebook, root), notebook, root)
    return sorted(set(stored) - set(profile_values(profile, notebook, root)))


def smoke_copies(root: Path, dest: Path, profile: str = TEST_PROFILE) -> list[Path]:
    """Copies of ``root/notebooks/*.ipynb`` in ``dest`` with ``profile``'s parameters injected by papermill
    (not executed): what ``make test`` runs under nbval."""
    import papermill

    loaded = load_profile(profile, root)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        if path.stem not in loaded["notebooks"]:
            raise ValueError(f"the {profile} profile does not run {path.name}, so the tests cannot run it")
        leaking = unset_by(profile, path.stem, root)
        if leaking:
            raise ValueError(f"profiles/{profile}.yaml leaves {leaking} of {path.stem} to the stored "
                             f"({stored_profile(path.stem, root)} profile's) values; set them for {profile}")
        target = dest / path.name
        papermill.execute_notebook(str(path), str(target), parameters=profile_values(profile, path.stem, root),
                                   prepare_only=True, kernel_name="medvision", progress_bar=False,
                                   cwd=str(root / "notebooks"))
        out.append(target)
    return out
