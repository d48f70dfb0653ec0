"""One chapter executed with papermill (atomically, on the ``medvision`` kernel), and the checks on the notebook
sources (stripped, paired with their ``py:percent`` twins, tagged).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from medvision.book.install_cell import (
    INSTALL_TAG,
    install_cell_source,
    repository_url,
)
from medvision.book.parameters import Parameter, cell_source, parse_cell

KERNEL_NAME = "medvision"


def ensure_kernel() -> None:
    """Register the ``medvision`` Jupyter kernel for this Python if it is not registered yet."""
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL_NAME in KernelSpecManager().find_kernel_specs():
        return
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (medvision)", prefix=sys.prefix)


def without_install_cells(path: Path):
    """The notebook at ``path`` without its ``install``-tagged cells (an ``nbformat`` node)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if INSTALL_TAG not in c.get("metadata", {}).get("tags", [])]
    return nb


def check_notebooks(folder: Path) -> list[str]:
    """Problems with the notebook sources: outputs left in, a ``.py`` twin that drifted, a missing install or
    parameters cell, another kernel. An empty list means all is well (``make lint`` runs this)."""
    import jupytext
    import nbformat

    problems = []
    project = next((p for p in (folder, *folder.resolve().parents) if (p / "pyproject.toml").is_file()), None)
    install_source = install_cell_source(repository_url(project) if project else "")
    for ipynb in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(ipynb, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        if any(c.outputs or c.execution_count is not None for c in code):
            problems.append(f"{ipynb}: outputs are not stripped (clear them, or run `make sync`)")
        if nb.metadata.get("kernelspec", {}).get("name") != KERNEL_NAME:
            problems.append(f"{ipynb}: kernel is not {KERNEL_NAME!r}")
        tags = [c.metadata.get("tags", []) for c in code]
        if not tags or INSTALL_TAG not in tags[0] or "nbval-skip" not in tags[0]:
            problems.append(f"{ipynb}: the first code cell must be the install cell tagged "
                            f"{INSTALL_TAG!r} and 'nbval-skip'")
        elif code[0].source != install_source:
            problems.append(f"{ipynb}: the install cell is not the one pyproject.toml's [project.urls] gives: "
                            "run `make sync`")
        if sum("parameters" in t for t in tags) != 1:
            problems.append(f"{ipynb}: needs exactly one cell tagged 'parameters'")
        twin = ipynb.with_suffix(".py")
        if not twin.is_file():
            problems.append(f"{ipynb}: no paired {twin.name}")
        elif [c.source for c in jupytext.read(twin).cells] != [c.source for c in nb.cells]:
            problems.append(f"{ipynb} and {twin.name} drifted apart: run `make sync`")
    return problems


def _local_kernel() -> dict:
    """Talk to the chapter's kernel over local IPC sockets where the OS has them: nothing travels over TCP, and
    the kernel does not print its "running over TCP without encryption" warning into the runner's output. The
    sockets live in a folder of their own under the temporary directory (by default they would be created in
    the notebook's working folder, and a killed build would leave them among the chapters)."""
    if os.name != "posix":
        return {}
    import tempfile

    from traitlets.config import Config

    folder = Path(tempfile.gettempdir()) / f"medvision-kernels-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return {"config": Config({"KernelManager": {"transport": "ipc", "ip": str(folder / f"kernel-{os.getpid()}")}})}


def execute_notebook(source: Path, target: Path, parameters: dict, cwd: Path) -> None:
    """Execute ``source`` (minus its install cell) with papermill into ``target``, atomically: a failed run
    leaves no page."""
    import papermill as pm

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.running.ipynb")
    try:
        pm.execute_notebook(without_install_cells(source), str(tmp), parameters=parameters, kernel_name=KERNEL_NAME,
                            cwd=str(cwd), progress_bar=False, log_output=False, **_local_kernel())
    except BaseException:
        failed = target.with_name(f"{target.stem}.failed.ipynb")
        if tmp.exists():
            os.replace(tmp, failed)
            print(f"  the executed notebook with the error is at {failed}", file=sys.stderr)
        raise
    import nbformat

    executed = nbformat.read(tmp, as_version=4)
    show_parameters_once(executed)
    nbformat.write(executed, tmp)
    os.replace(tmp, target)


def _parameter_lines(source: str, values: dict) -> list[str]:
    """The defaults cell with each parameter that ``values`` sets given that value (type hint and comment kept;
    a long mapping spread one key per line, as the stored cells are)."""
    params = parse_cell(source)
    return cell_source([Parameter(p.name, p.annotation, values.get(p.name, p.value), p.comment)
                        for p in params]).splitlines()


def show_parameters_once(nb) -> None:
    """Show a chapter's parameters in one cell: papermill leaves the notebook's defaults cell and its own
    injected cell one after the other. The injected cell becomes the full list (defaults with the profile's
    values put in, as the kernel ended up with them) and the defaults cell is left out of the rendered page."""
    import ast

    defaults = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    injected = next((c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])), None)
    if defaults is None or injected is None:
        return
    values = {}
    for node in ast.parse(injected.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    injected.source = "\n".join(["# Parameters of this run: the profile's values in the notebook's defaults",
                                  *_parameter_lines(defaults.source, values)])
    tags = defaults.metadata.setdefault("tags", [])
    if "remove-cell" not in tags:
        tags.append("remove-cell")
