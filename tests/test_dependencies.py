"""Every third-party package the code imports is declared in ``pyproject.toml`` where it is needed.

- ``common/`` and ``device/``: the runtime dependencies; a package of an extra (``local``: the
  embedded broker of ``nattery run --simulate``) only imported inside a function, so that a device
  without the extra never needs it.
- ``cloud_sync/``: the runtime dependencies and the ``cloud`` extra.
- ``fleet/``: the runtime dependencies; ``balena-sdk`` (the ``fleet`` extra) only inside functions.
- ``tools/``: any of them (benchmarks and training run in a development environment).

An import in the handler of ``try: … except ImportError`` is a fallback for an image without the
declared package, and exempt. Import names are mapped to distributions by ``importlib.metadata``
(an import whose distribution is not installed, such as TensorFlow, by its own name).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWN = {"common", "device", "cloud_sync", "fleet", "tools", "tests", "__future__"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {normalise(re.match(r"[A-Za-z0-9._-]+", r).group(0)) for r in requirements}  # type: ignore[union-attr]

    extras = {extra: names(reqs) for extra, reqs in project["optional-dependencies"].items()}
    return names(project["dependencies"]), extras


def third_party_imports(root: Path, package: str) -> Iterator[tuple[Path, str, bool]]:
    """(file, top-level module, imported at module level) for every import outside the project
    and the standard library, fallbacks under ``except ImportError`` left out."""
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        fallbacks: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers
            ):
                fallbacks |= {id(n) for h in node.handlers for n in ast.walk(h)}
        top_level = {id(n) for n in tree.body} | {
            id(n) for stmt in tree.body if isinstance(stmt, (ast.Try, ast.If)) for n in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if id(node) in fallbacks:
                continue
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in OWN and top not in sys.stdlib_module_names:
                    yield path, top, id(node) in top_level


@functools.cache
def installed() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions(module: str) -> set[str]:
    """The distributions providing ``module``; one not installed here (an extra such as ``train``)
    is taken to be the distribution of the same name, so it still has to be declared."""
    return {normalise(d) for d in installed().get(module, [module])}


def undeclared(package: str, allowed: set[str], lazy_only: frozenset[str] | set[str] = frozenset()) -> list[str]:
    problems = []
    for path, module, at_top in third_party_imports(ROOT, package):
        dists = distributions(module)
        where = f"{path.relative_to(ROOT)}: {module}"
        if not dists & (allowed | lazy_only):
            problems.append(f"{where} ({', '.join(sorted(dists))}) is not declared")
        elif not dists & allowed and at_top:
            problems.append(f"{where} belongs to an extra but is imported at module level")
    return problems


def test_the_device_imports_only_its_dependencies_and_extras_lazily() -> None:
    runtime, extras = declared()
    assert undeclared("common", runtime) == []
    assert undeclared("device", runtime, lazy_only=extras["local"]) == []


def test_the_aggregator_imports_only_its_dependencies() -> None:
    runtime, extras = declared()
    assert undeclared("cloud_sync", runtime | extras["cloud"]) == []


def test_the_fleet_tool_imports_its_extra_lazily() -> None:
    runtime, extras = declared()
    assert undeclared("fleet", runtime, lazy_only=extras["fleet"]) == []


def test_tools_import_only_declared_packages() -> None:
    runtime, extras = declared()
    assert undeclared("tools", runtime.union(*extras.values())) == []


def test_the_checker_sees_an_undeclared_and_an_eager_extra_import(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        "try:\n    import yaml\nexcept ImportError:\n    import nothing_here\n\ndef f():\n    import click\n"
    )
    found = {(p.name, m, top) for p, m, top in third_party_imports(tmp_path, "pkg")}
    assert found == {("m.py", "yaml", True), ("m.py", "click", False)}
