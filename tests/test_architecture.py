"""The import order of docs/architecture.md, checked on the source.

Bottom to top: ``errors`` (and ``_lazy``) -> ``serialize`` -> {``checkpoint``,
``execute``, ``monitor``, ``diagnostics``, ``testing``} -> ``cli``, ``demo`` and
the package ``__init__``. Nothing imports upward, not even lazily inside a
function, and the packages of one layer do not import each other in a circle, and no two
modules import each other at module level.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "serdoctor"

LAYERS = {
    "serdoctor.errors": 0,
    "serdoctor._lazy": 0,
    "serdoctor._sqlite": 0,
    "serdoctor._version": 0,
    "serdoctor.serialize": 1,
    "serdoctor.checkpoint": 2,
    "serdoctor.execute": 2,
    "serdoctor.monitor": 2,
    "serdoctor.diagnostics": 2,
    "serdoctor.testing": 2,
    "serdoctor.cli": 3,
    "serdoctor.demo": 3,
    "serdoctor": 3,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _unit(module: str) -> str:
    """The layered unit of a module: ``serdoctor.serialize._x`` -> ``serdoctor.serialize``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    is_package = MODULES[module].name == "__init__.py"
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.startswith("serdoctor")]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join([*base, node.module] if node.module else base)
    else:
        source = node.module or ""
    if not source.startswith("serdoctor"):
        return []
    out = []
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        if sub in MODULES:
            out.append(sub)  # `from pkg import submodule`
        elif not (module == source or module.startswith(source + ".")):
            out.append(source)  # importing a package from outside runs its __init__
        else:
            out.append(source)
    return out


def _imports() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(every import, module-level imports only), as module -> imported modules."""
    every: dict[str, set[str]] = defaultdict(set)
    top: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nested = {
            id(inner)
            for fn in ast.walk(tree)
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            for inner in ast.walk(fn)
        }
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, node):
                    if target == module:
                        continue
                    every[module].add(target)
                    if id(node) not in nested:
                        top[module].add(target)
    return every, top


EVERY, TOP = _imports()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.timeout(30)
def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if _unit(m) not in LAYERS)
    assert not unplaced, f"place these in LAYERS and docs/architecture.md: {unplaced}"


@pytest.mark.timeout(30)
def test_nothing_imports_upward() -> None:
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in EVERY.items()
        for target in targets
        if LAYERS[_unit(target)] > LAYERS[_unit(module)]
    )
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


@pytest.mark.timeout(30)
def test_packages_of_one_layer_import_each_other_in_no_circle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in EVERY.items():
        for target in targets:
            if _unit(target) != _unit(module):
                graph[_unit(module)].add(_unit(target))
    assert _cycles(graph) == []


@pytest.mark.timeout(30)
def test_no_module_level_import_cycles() -> None:
    assert _cycles(TOP) == [], "modules that import each other (at module level)"


@pytest.mark.timeout(30)
def test_the_checker_sees_a_cycle_when_there_is_one() -> None:
    # The checks above pass on a clean tree; this one proves they can fail.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
