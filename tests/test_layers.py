"""The package's layers import in one direction, and no module imports itself back.

The import graph is read from the source (every ``import`` and ``from ... import``,
inside functions and ``TYPE_CHECKING`` blocks included), so a function-level import
cannot hide a cycle. Layers, bottom to top (a layer may import only those before it):

    ops  <  models | data  <  checkpoint  <  hub  <  engine  <  apps  <  cli

``models`` and ``data`` stand side by side and never import each other. The package's
``__init__`` (the lazy public API) and the one-release re-exports of old module paths sit
above every layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "temporal_shift"
ROOT = "temporal_shift"
# layer -> the layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "ops": set(),
    "models": {"ops"},
    "data": {"ops"},
    "checkpoint": {"ops", "models", "data"},
    "hub": {"ops", "models", "data", "checkpoint"},
    "engine": {"ops", "models", "data", "checkpoint", "hub"},
    "apps": {"ops", "models", "data", "checkpoint", "hub", "engine"},
    "cli": {"ops", "models", "data", "checkpoint", "hub", "engine", "apps"},
}
TOP = "top"  # the package __init__ and the re-exports of old paths: may import anything


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else TOP


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The modules among ``modules`` that ``path`` imports (anywhere in the file)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), package=package, modules=modules)


def imports_in(source: str, *, package: str, modules: set[str]) -> set[str]:
    """The modules among ``modules`` that the code ``source`` of a module in ``package`` imports.
    ``from pkg import sub`` depends on the module ``pkg.sub`` where there is one, else on ``pkg``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return found & modules


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    modules = set(files)
    return {module: imports_of(path, modules) - {module} for module, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_every_module_belongs_to_a_layer() -> None:
    strays = [m for m in import_graph() if layer_of(m) == TOP and m.count(".") > 1]
    assert not strays, f"modules outside the layers: {strays}"


def test_layers_import_only_the_layers_below() -> None:
    graph = import_graph()
    wrong = []
    for module, targets in sorted(graph.items()):
        layer = layer_of(module)
        if layer == TOP:
            continue
        for target in sorted(targets):
            other = layer_of(target)
            if other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{module} ({layer}) imports {target} ({other})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_sees_function_level_relative_and_type_checking_imports_and_cycles() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import tsn\n"
        "if TYPE_CHECKING:\n    from temporal_shift.hub.weights import X\n"
        "def f():\n    from temporal_shift.apps import stream\n    import temporal_shift.cli\n"
    )
    known = {
        "temporal_shift.models",
        "temporal_shift.models.tsn",
        "temporal_shift.hub.weights",
        "temporal_shift.apps",
        "temporal_shift.apps.stream",
        "temporal_shift.cli",
    }
    found = imports_in(source, package="temporal_shift.models", modules=known)
    assert found == {
        "temporal_shift.models.tsn",
        "temporal_shift.hub.weights",
        "temporal_shift.apps.stream",
        "temporal_shift.cli",
    }
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_exists(layer: str) -> None:
    assert (PACKAGE / layer / "__init__.py").is_file() or (PACKAGE / f"{layer}.py").is_file()
