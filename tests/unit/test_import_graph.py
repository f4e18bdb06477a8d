"""No import cycle in src/trainmon: the graph is read from the source (ast), so a cycle that
only a lazy, function-level import hides today is caught as well."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "trainmon"

Graph = Mapping[str, frozenset[str]]


def module_of(path: Path, root: Path) -> tuple[str, bool]:
    """The dotted name of a source file under ``root``, and whether it is a package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import at any depth, but not those under ``if TYPE_CHECKING:``: they never run."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    typing_only = isinstance(node, ast.If) and is_type_checking(node)
    children = (
        node.orelse if isinstance(node, ast.If) and typing_only else ast.iter_child_nodes(node)
    )
    for child in children:
        yield from import_nodes(child)


def imported(
    tree: ast.AST, module: str, is_package: bool, modules: frozenset[str]
) -> frozenset[str]:
    """The modules of ``modules`` that ``module`` imports (``from pkg import sub`` names the
    submodule when ``sub`` is one, else ``pkg``)."""
    found: set[str] = set()
    for node in import_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = module.split(".")
            anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            found.add(sub if sub in modules else base)
    return frozenset((found & modules) - {module})


def import_graph(root: Path, package: str) -> dict[str, frozenset[str]]:
    files = {module_of(path, root): path for path in sorted((root / package).rglob("*.py"))}
    modules = frozenset(name for name, _ in files)
    return {
        name: imported(ast.parse(path.read_text(), str(path)), name, is_package, modules)
        for (name, is_package), path in files.items()
    }


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected component of
    more than one module (Tarjan's algorithm, iterative so a deep tree cannot overflow)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            child = next((e for e in edges if e not in index or e in on_stack), None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
            elif child in index:
                low[node] = min(low[node], index[child])
            else:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
    return [cycle_through(component, graph) for component in components]


def cycle_through(component: list[str], graph: Graph) -> list[str]:
    """A shortest path from the component's first module back to itself (breadth first)."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        step: list[str] = []
        for node in frontier:
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt in members and nxt not in came_from:
                    came_from[nxt] = node
                    step.append(nxt)
        frontier = step
    raise AssertionError(f"no cycle through {component}")  # a component always has one


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": frozenset("b"), "b": frozenset()}, []),
        ({"a": frozenset("b"), "b": frozenset("a")}, [["a", "b", "a"]]),
        (
            {"a": frozenset("b"), "b": frozenset("c"), "c": frozenset("a"), "d": frozenset("a")},
            [["a", "b", "c", "a"]],
        ),
        ({"a": frozenset("bc"), "b": frozenset(), "c": frozenset("b")}, []),
    ],
)
def test_cycles(graph: dict[str, frozenset[str]], expected: list[list[str]]) -> None:
    assert cycles(graph) == expected


def test_imports_are_resolved(tmp_path: Path) -> None:
    """Absolute, relative and function-level imports count; TYPE_CHECKING ones do not."""
    pkg = tmp_path / "p"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p import c\n"
    )
    (pkg / "a.py").write_text("def f():\n    from p.sub import b\n")
    (pkg / "c.py").write_text("import p.a\n")
    (pkg / "sub" / "__init__.py").write_text("from . import b\nfrom .. import a\n")
    (pkg / "sub" / "b.py").write_text("from ..c import x\n")
    assert import_graph(tmp_path, "p") == {
        "p": frozenset(),
        "p.a": {"p.sub.b"},
        "p.c": {"p.a"},
        "p.sub": {"p.sub.b", "p.a"},
        "p.sub.b": {"p.c"},
    }
    assert cycles(import_graph(tmp_path, "p")) == [["p.a", "p.sub.b", "p.c", "p.a"]]


def test_trainmon_has_no_import_cycle() -> None:
    found = cycles(import_graph(SOURCE, PACKAGE))
    assert not found, "import cycle(s): " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_runner_does_not_import_the_cli() -> None:
    graph = import_graph(SOURCE, PACKAGE)
    offending = {
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.startswith(f"{PACKAGE}.runner")
        for target in targets
        if target == f"{PACKAGE}.cli" or target.startswith(f"{PACKAGE}.cli.")
    }
    assert not offending
