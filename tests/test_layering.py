"""The package's layering, read from the source with ``ast`` (issue 17, point 5).

Front ends (``book``, ``cli``, ``app``) may import the core; no core module imports a front end, and prediction
(``inference`` and everything it imports) never pulls in training or evaluation.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "medvision"
FRONT_ENDS = {"medvision.book", "medvision.systems_book", "medvision.cli", "medvision.app"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """medvision modules imported anywhere in ``path`` (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("medvision")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("medvision"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # "from medvision import book"
    return found


GRAPH = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    while name and name not in GRAPH:
        name = name.rpartition(".")[0]
    return name or None


def _closure(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in GRAPH[todo.pop()]:
            mod = _resolve(dep)
            if mod and mod not in seen:
                seen.add(mod)
                todo.append(mod)
    return seen


def test_the_graph_is_read():
    assert {"medvision.training", "medvision.inference", "medvision.data.loader"} <= set(GRAPH)
    assert "medvision.fusion" in _closure("medvision.inference")
    assert "medvision.training" in _closure("medvision.experiment")  # the walk follows imports


def test_no_core_module_imports_a_front_end():
    offenders = {mod: sorted(FRONT_ENDS & {_resolve(d) for d in deps})
                 for mod, deps in GRAPH.items() if mod not in FRONT_ENDS}
    assert {m: f for m, f in offenders.items() if f} == {}


def test_prediction_does_not_pull_in_training_or_evaluation():
    reached = _closure("medvision.inference")
    assert not reached & {"medvision.training", "medvision.evaluation", "medvision.experiment"}, sorted(reached)
