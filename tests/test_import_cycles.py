"""No import cycles among the project's modules.

The import graph is built with ``ast`` from every ``import`` statement in ``device/``,
``cloud_sync/`` and ``tools/`` — at module level, inside functions and under ``TYPE_CHECKING``
alike, because an import moved into a function still ties the two modules together. An edge points
at the most specific project module named (``from device.web import app`` points at
``device.web.app``; ``from device.config import Settings`` at ``device.config``). A package's
``__init__`` counts as the module named by the package.

The same graph with each subpackage (``device.prices``) and each top-level package
(``device``, ``cloud_sync``) taken as one node must be acyclic too: two packages that import each
other are one package in two places, even when no single pair of modules closes the loop.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "device", "cloud_sync", "fleet", "tools")
SUBPACKAGES = frozenset(p.parent.name for pkg in PACKAGES for p in (ROOT / pkg).glob("*/__init__.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name ``module`` imports, relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                yield f"{base}.{alias.name}"
            yield base


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported in imported_names(name, path):
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    # ``from device.x import y`` yields both ``device.x.y`` and ``device.x``; keep the specific one.
    for name, targets in graph.items():
        graph[name] = {t for t in targets if not any(o.startswith(t + ".") for o in targets)}
    return graph


def collapsed(graph: dict[str, set[str]], node: Callable[[str], str]) -> dict[str, set[str]]:
    """The graph with every module replaced by ``node(module)``; edges inside a node dropped."""
    out: dict[str, set[str]] = {}
    for name, targets in graph.items():
        out.setdefault(node(name), set())
        for target in targets:
            out.setdefault(node(target), set())
            if node(target) != node(name):
                out[node(name)].add(node(target))
    return out


def subpackage(module: str) -> str:
    """``device.prices.service`` → ``device.prices``; a top-level module such as ``device.config``
    stands for itself (``device`` itself is the root that wires the subpackages together)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (len(parts) == 2 and parts[1] in SUBPACKAGES) else module


def top_level(module: str) -> str:
    return module.split(".")[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_function_level_and_relative_imports() -> None:
    graph = import_graph()
    assert "device.config" in graph["device.cli"]
    assert len(graph) > 50


def test_cycle_finder_reports_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_collapsing_joins_modules_into_their_packages() -> None:
    graph = {"device.prices.a": {"device.forecast.b"}, "device.forecast.b": {"device.prices.c"}, "device.prices.c": set()}
    assert subpackage("device.prices.a") == "device.prices"
    assert subpackage("device.config") == "device.config"
    assert cycles(graph) == []
    assert cycles(collapsed(graph, subpackage)) == [["device.forecast", "device.prices"]]


def assert_acyclic(graph: dict[str, set[str]]) -> None:
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_import_cycles_between_modules() -> None:
    assert_acyclic(import_graph())


def test_no_import_cycles_between_subpackages() -> None:
    assert_acyclic(collapsed(import_graph(), subpackage))


def test_no_import_cycles_between_top_level_packages() -> None:
    assert_acyclic(collapsed(import_graph(), top_level))


def test_device_and_aggregator_share_only_common() -> None:
    """The device and the aggregator each import ``common``, never each other; ``common`` imports
    neither (what they share, such as the sync protocol, lives there)."""
    graph = collapsed(import_graph(), top_level)
    assert "cloud_sync" not in graph["device"]
    assert "device" not in graph["cloud_sync"]
    assert graph["common"] <= {"common"}
