"""The package's architecture, read from the source with ``ast``: layers, no import cycles, a prediction path
free of training.

The layers are declared here, once, bottom first (ARCHITECTURE.md draws the same list). A module may import
modules of its own layer and of the layers below it, never above. Every ``import`` counts, at the top of a file
or inside a function; only ``if TYPE_CHECKING:`` blocks are exempt. Importing ``a.b.c`` also runs the package
``a.b``, so that is an edge too. ``bench/`` scripts import their siblings by bare name; those are edges as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Bottom to top. Each entry: a layer's name and the top-level names (under ``medvision.``) that belong to it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("medvision", "medvision.core", "medvision.resources")),
    ("config", ("medvision.config",)),
    ("data", ("medvision.data",)),
    ("metrics", ("medvision.metrics",)),
    ("plots", ("medvision.plots",)),
    ("models", ("medvision.models",)),
    ("train", ("medvision.train",)),
    ("evaluate", ("medvision.evaluate",)),
    ("deploy", ("medvision.deploy",)),
    ("book", ("medvision.book",)),
    ("faces", ("medvision.cli", "medvision.app")),
    ("bench", ("bench",)),
)
#: Faces may import lazily inside functions: ``medvision --help`` must not import torch, and a bench script's
#: spawned workers load medvision where they run. Nothing else may (the edges above count them all the same).
LAZY_ALLOWED = ("medvision.cli", "bench.")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {_module_name(p): p for p in [*(ROOT / "medvision").rglob("*.py"), *(ROOT / "bench").glob("*.py")]}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _resolve(name: str) -> str | None:
    """The module (file) that ``name`` names: ``medvision.config.RunConfig`` -> ``medvision.config``."""
    while name and name not in SOURCES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> tuple[set[str], list[int]]:
    """The project modules ``module`` imports (with the packages that run on the way), and the line numbers
    of imports made inside functions."""
    path = SOURCES[module]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    in_functions = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                    for n in ast.walk(f)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names, lazy = set(), []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            found = [a.name for a in node.names]
        elif node.level:  # relative import
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            stem = ".".join([*base, node.module] if node.module else base)
            found = [stem, *(f"{stem}.{a.name}" for a in node.names)]
        else:
            found = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        if module.startswith("bench."):  # bench scripts import their siblings by bare name
            found += [f"bench.{n}" for n in found if f"bench.{n}" in SOURCES]
        project = [n for n in found if n.split(".")[0] in ("medvision", "bench")]
        if project and id(node) in in_functions:
            lazy.append(node.lineno)
        names |= set(project)
    edges = set()
    for name in names:
        target = _resolve(name)
        while target and target != "medvision":  # the packages on the way run too
            if not module.startswith(target + ".") and target != module:
                edges.add(target)
            target = _resolve(target.rpartition(".")[0])
    return edges, lazy


GRAPH = {m: _imports(m)[0] for m in SOURCES}


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the layer ``module`` belongs to (the longest matching prefix)."""
    best = None
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if module == member or module.startswith(member + "."):
                if best is None or len(member) > best[1]:
                    best = (index, len(member))
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS"
    return best[0]


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (its modules in order, the first repeated at the end), or ``[]``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def _closure(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in GRAPH[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_the_graph_is_read():
    assert {"medvision.train.loop", "medvision.deploy.inference", "medvision.data.loader", "bench.sides"} <= set(GRAPH)
    assert "medvision.models.fusion" in _closure("medvision.deploy.inference")
    assert "medvision.train.loop" in _closure("medvision.train.runner")  # the walk follows imports
    assert "bench.sides" in GRAPH["bench.train_throughput"]  # bare sibling imports are edges
    assert "medvision.config" in GRAPH["medvision.data.loader"]  # a package on the way is an edge


def test_every_module_belongs_to_a_layer():
    for module in GRAPH:
        layer_of(module)


def test_no_import_cycle():
    assert find_cycle(GRAPH) == []


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_from_a_higher_layer():
    upward = {f"{m} ({LAYERS[layer_of(m)][0]}) -> {d} ({LAYERS[layer_of(d)][0]})"
              for m, deps in GRAPH.items() for d in deps if layer_of(d) > layer_of(m)}
    assert sorted(upward) == []


def test_no_lazy_import_below_the_faces():
    lazy = {m: lines for m in SOURCES if not m.startswith(LAZY_ALLOWED) and (lines := _imports(m)[1])}
    assert lazy == {}, "import at the top of the module; a lazy import may not hide an upward edge or a cycle"


def test_no_dynamic_import_of_medvision():
    found = []
    for module, path in SOURCES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "__import__")
                    and node.args and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).startswith("medvision")):
                found.append(f"{module}:{node.lineno}")
    assert found == []


def test_prediction_does_not_pull_in_training_or_evaluation():
    reached = _closure("medvision.deploy.inference")
    assert not {m for m in reached if m.startswith(("medvision.train", "medvision.evaluate"))}, sorted(reached)
