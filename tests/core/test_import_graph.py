"""The product code (rnnc/, backends/rnnc_torch, backends/rnnc_onnx) has no import cycle.

Every module is parsed with `ast` (nothing is imported) and each import becomes an edge
of the module graph. What counts as an edge:

- every `import` and `from ... import`, also the lazy ones inside functions: deferring
  an import hides a cycle from Python, not from the design, and the next refactor that
  moves it to the top of the file turns it into an ImportError;
- `importlib.import_module("name")`; with an f-string (`f"rnnc.cli.{name}"`) as every
  module its constant prefix could name, which over-counts and so never hides a cycle;
- an edge goes to the module named, not to its parent packages: `import rnnc.cli.train`
  runs `rnnc/cli/__init__.py` first, but a package that imports its own subcommands
  lazily does not depend on every module that lives inside it.

What does not count: imports under `if TYPE_CHECKING:` (they never run; annotations may
name each other both ways), and backends found through entry points (`rnnc.plugins`
names no backend; the backends implement the core's protocol).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# package root on disk -> the folder its import name starts in
PRODUCT = (ROOT / "rnnc", ROOT / "backends" / "rnnc_torch", ROOT / "backends" / "rnnc_onnx")


@dataclass(frozen=True)
class Edge:
    target: str
    line: int
    lazy: bool  # inside a function: runs when called, not when imported


def module_files(packages: Iterable[Path]) -> dict[str, Path]:
    """Every module under `packages` by its import name (`rnnc.cli.train`, `rnnc.cli`)."""
    found = {}
    for package in packages:
        for path in sorted(package.rglob("*.py")):
            parts = path.relative_to(package.parent).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(nodes: Iterable[ast.AST], in_function: bool = False) -> Iterable[tuple[ast.AST, bool]]:
    """(import node or import_module call, inside a function?) under `nodes`, skipping
    TYPE_CHECKING blocks (their `else:` runs, so it is walked)."""
    for node in nodes:
        if isinstance(node, ast.If) and _type_checking(node.test):
            yield from _imports(node.orelse, in_function)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (isinstance(node, ast.Call) and _is_import_module(node.func)):
            yield node, in_function
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _imports(ast.iter_child_nodes(node), inner)


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id == "import_module"
    )


def _named(name: str, modules: dict[str, Path]) -> str | None:
    """The product module `name` imports: itself, or the longest product prefix of it
    (`import rnnc.cli.train as t` of a name that is a package's attribute)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def edges(name: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    """The product modules that module `name` (at `path`) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node, lazy in _imports([ast.parse(path.read_text(), filename=str(path))]):
        targets: list[str | None] = []
        if isinstance(node, ast.Import):
            targets = [_named(alias.name, modules) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from . import ir` imports the module rnnc.ir; `from .data import Dataset` rnnc.data
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else _named(base, modules) for a in node.names]
        elif isinstance(node, ast.Call) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                targets = [_named(arg.value, modules)]
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                prefix = str(arg.values[0].value)
                targets = [other for other in modules if other.startswith(prefix) and other != name]
        found += [Edge(target, node.lineno, lazy) for target in targets if target and target != name]
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, list[Edge]]:
    return {name: edges(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, list[Edge]]) -> list[list[str]]:
    """One cycle (a path that ends where it starts) through each strongly connected
    group of modules, found with Tarjan's algorithm; empty when the graph is acyclic."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for edge in graph.get(node, []):
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(sorted(groups_member), graph) for groups_member in sorted(groups)]


def _cycle_in(group: list[str], graph: dict[str, list[Edge]]) -> list[str]:
    """The shortest path from the group's first module back to itself, inside the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in graph.get(node, []):
                if edge.target == start:
                    return paths[node] + [start]
                if edge.target in members and edge.target not in paths:
                    paths[edge.target] = paths[node] + [edge.target]
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {group}")  # Tarjan says there is one


def describe(cycle: list[str], graph: dict[str, list[Edge]], modules: dict[str, Path]) -> str:
    """`a -> b -> a` with the file and line of each import (lazy ones marked)."""
    steps = []
    for here, there in zip(cycle, cycle[1:]):
        edge = next(e for e in graph[here] if e.target == there)
        where = f"{modules[here].relative_to(ROOT) if modules[here].is_relative_to(ROOT) else modules[here]}:{edge.line}"
        steps.append(f"{here} -> {there} ({where}{', in a function' if edge.lazy else ''})")
    return "import cycle: " + " -> ".join(cycle) + "\n  " + "\n  ".join(steps)


def test_product_code_has_no_import_cycle() -> None:
    modules = module_files(PRODUCT)
    graph = import_graph(modules)
    found = [describe(cycle, graph, modules) for cycle in cycles(graph)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "importer, imported",
    [
        ("rnnc.data_text", "rnnc.dataset"),  # from .dataset import ...
        ("rnnc.data_peek", "rnnc.ir"),  # from . import ir
        ("rnnc.cli", "rnnc.cli.train"),  # importlib.import_module(f"rnnc.cli.{name}")
        ("rnnc.cli.check", "rnnc.spec"),  # inside a function
        ("rnnc_torch", "rnnc_torch.train"),  # inside a method
        ("rnnc_torch.fit", "rnnc.data"),  # absolute, from a backend into the core
    ],
)
def test_the_walk_sees_each_kind_of_import(importer: str, imported: str) -> None:
    """The product graph's edges include every kind the walk claims to read, so a
    walk that read none of them could not pass the test above by finding nothing."""
    modules = module_files(PRODUCT)
    assert imported in {edge.target for edge in edges(importer, modules[importer], modules)}


# Small packages written to a temporary folder: (files, the cycle the walk must report or None).
CASES = {
    "top-level imports, both ways": ({"a.py": "from . import b\n", "b.py": "from .a import f\n"}, ["pkg.a", "pkg.b", "pkg.a"]),
    "a lazy import closes the cycle": (
        {"a.py": "from . import b\n", "b.py": "def f():\n    from .a import g\n"},
        ["pkg.a", "pkg.b", "pkg.a"],
    ),
    "three modules around": (
        {"a.py": "import pkg.b\n", "b.py": "from pkg import c\n", "c.py": "from pkg.a import x\n"},
        ["pkg.a", "pkg.b", "pkg.c", "pkg.a"],
    ),
    "import_module with an f-string": (
        {"__init__.py": "import importlib\ndef load(n):\n    return importlib.import_module(f'pkg.sub.{n}')\n",
         "sub/__init__.py": "", "sub/one.py": "import pkg\n"},
        ["pkg", "pkg.sub.one", "pkg"],
    ),
    "TYPE_CHECKING imports do not count": (
        {"a.py": "from . import b\n", "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import T\n"},
        None,
    ),
    "but the else branch of TYPE_CHECKING runs": (
        {"a.py": "from . import b\n", "b.py": "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    from . import a\n"},
        ["pkg.a", "pkg.b", "pkg.a"],
    ),
    "a package that lazily loads its own module is no cycle": (
        {"__init__.py": "def run():\n    from .train import go\n", "train.py": "from .model import M\n", "model.py": ""},
        None,
    ),
    "one way only": ({"a.py": "from . import b\nimport numpy\n", "b.py": "import os\n"}, None),
}


@pytest.mark.parametrize("name", CASES)
def test_the_walk_finds_exactly_the_cycles_there_are(name: str, tmp_path: Path) -> None:
    files, expected = CASES[name]
    package = tmp_path / "pkg"
    for relative, text in {"__init__.py": "", **files}.items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text(text)
    modules = module_files([package])
    graph = import_graph(modules)
    found = cycles(graph)
    assert found == ([expected] if expected else [])
    if expected:
        assert describe(expected, graph, modules).startswith("import cycle: " + " -> ".join(expected))
