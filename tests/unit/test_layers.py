"""The house: ovexport's subpackages stand in layers, and an import goes down (or sideways), never up.

Every ``import`` of an ``ovexport`` module counts, the lazy ones inside functions too (they are dependencies all
the same); only ``if TYPE_CHECKING:`` blocks are left out. An import circle is a group of modules that import one
another, directly or around. ``python tests/unit/test_layers.py`` prints both.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PKG = Path(__file__).resolve().parents[2] / "ovexport"

# bottom-up: a unit may import its own layer and those below. "models" is the family contract (interface,
# registry, generation_config), with the parts table and the bundle's layout and manifest: the vocabulary a
# recipe is written in (its sources' synthetic sizes and trace sizes are asked of the registry, its per-part
# keys are the parts table), so it stands below the recipe. "families" is a family's package (models/<family>/),
# which implements the contract with the exporter's and the runtime's tools (and reads recipes) and is reached by
# generic code only through the registry; "fixtures" (test fixtures trained on generated data, reached through
# the synthetic-source registry) build a family's model, so they stand beside it. A registry that imports its
# plugins by name when first asked (the families, the built-in steps, the fixtures) is not an import of them
LAYERS: tuple[tuple[str, ...], ...] = (
    ("ovexport", "errors", "util", "synthetic"),
    ("engine",),
    ("models", "parts", "bundle"),
    ("recipe",),
    ("exporter", "calibration", "validators", "evaluation", "runtime"),
    ("families", "fixtures"),
    ("steps",),
    ("compare", "publish"),
    ("cli",),
)
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}
CONTRACT = ("interface", "registry", "generation_config", "positions", "image_batches")

# what is left to move (module -> module it imports from a higher layer); a new one fails the test, a moved one
# is taken off this list
KNOWN_UPWARD: set[tuple[str, str]] = {
    ("ovexport.bundle.manifest", "ovexport.validators.status"),
    ("ovexport.steps.package", "ovexport.publish.bundle_card"),
}
MAX_CIRCLES = 0


def module_name(f: Path) -> str:
    parts = list(f.with_suffix("").relative_to(PKG.parent).parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imported_names(f: Path) -> list[tuple[str, int]]:
    """(dotted name, line) of each ``ovexport`` name ``f`` imports, relative imports resolved."""
    module = module_name(f)
    package = module if f.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(f.read_text())
    skip = _type_checking_lines(tree)
    names: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            names += [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return [(n, line) for n, line in names if n.split(".")[0] == "ovexport"]


def unit_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "ovexport"
    if parts[1] == "models" and len(parts) > 2 and parts[2] not in CONTRACT:
        return "families"
    return parts[1]


def module_imports() -> dict[tuple[str, str], int]:
    """(importer, imported module) -> first line: the imported name cut back to a module that exists."""
    modules = {module_name(f): f for f in PKG.rglob("*.py")}
    edges: dict[tuple[str, str], int] = {}
    for importer, f in sorted(modules.items()):
        for name, line in imported_names(f):
            while name not in modules and "." in name:
                name = name.rsplit(".", 1)[0]
            if name != importer:
                edges.setdefault((importer, name), line)
    return edges


def upward_imports() -> dict[tuple[str, str], int]:
    return {(a, b): line for (a, b), line in module_imports().items() if LAYER[unit_of(b)] > LAYER[unit_of(a)]}


def circles(graph: dict[str, set[str]] | None = None) -> list[list[str]]:
    """The import circles: each group of modules that import one another, directly or around (the strongly
    connected components of the module import graph with more than one module), Tarjan's algorithm."""
    if graph is None:
        graph = defaultdict(set)
        for a, b in module_imports():
            graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_every_unit_has_a_layer():
    units = {unit_of(module_name(f)) for f in PKG.rglob("*.py")}
    assert units - set(LAYER) == set()


def test_no_new_upward_import():
    got = set(upward_imports())
    assert got - KNOWN_UPWARD == set(), "imports from a lower layer up to a higher one"
    assert KNOWN_UPWARD - got == set(), "moved: take these off KNOWN_UPWARD"


def test_import_circles():
    assert len(circles()) <= MAX_CIRCLES, circles()


def test_the_measure_sees_a_lazy_upward_import(tmp_path):
    f = tmp_path / "ovexport" / "recipe" / "x.py"
    f.parent.mkdir(parents=True)
    f.write_text("from __future__ import annotations\nfrom typing import TYPE_CHECKING\n"
                 "if TYPE_CHECKING:\n    from ovexport.cli import main\n"
                 "def f():\n    from ..steps import package\n    from . import schema\n")
    global PKG
    saved, PKG = PKG, tmp_path / "ovexport"
    try:
        assert imported_names(f) == [("ovexport.steps.package", 6), ("ovexport.recipe.schema", 7)]
    finally:
        PKG = saved
    assert circles({"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}, "e": {"a"}}) == [["a", "b"], ["c", "d"]]


if __name__ == "__main__":
    ups = upward_imports()
    for (a, b), line in sorted(ups.items()):
        print(f"up  {a}:{line} -> {b}   ({unit_of(a)} -> {unit_of(b)})")
    found = circles()
    for group in found:
        print("circle", ", ".join(group))
    print(f"{len(ups)} upward imports, {len(found)} import circles")
