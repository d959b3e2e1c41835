"""Architecture rules of the ``prover`` package, read from its source with ``ast``.

The package is not imported: the rules hold for the code as written, including imports
inside functions (a lazy import still ties two modules together). ``if TYPE_CHECKING:``
imports are annotations only and are left out. The layer contracts themselves live in
pyproject.toml (``[tool.importlinter]``) and are checked by running ``lint-imports``.
"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "prover"
MAX_FUNCTION_LINES = 100


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module
    is_package: bool

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"


@cache
def modules() -> dict[str, Module]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        found[name] = Module(name, path, ast.parse(path.read_text(), str(path)), is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """All nodes under ``node`` (functions included) except ``if TYPE_CHECKING:`` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from runtime_nodes(other)
            continue
        yield child
        yield from runtime_nodes(child)


def absolute(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module name of a ``from ... import`` (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    base = base[: len(base) - node.level + (1 if module.is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def owner(name: str) -> str | None:
    """The package module that defines a dotted name (itself, or the closest parent)."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


@dataclass(frozen=True)
class Import:
    importer: Module
    imported: str  # a module of the package
    node: ast.AST


def imports() -> Iterator[Import]:
    """Each runtime import of a package module by a package module."""
    for module in modules().values():
        for node in runtime_nodes(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = owner(alias.name)
                    if target:
                        yield Import(module, target, node)
            elif isinstance(node, ast.ImportFrom):
                source = absolute(module, node)
                for alias in node.names:
                    target = owner(f"{source}.{alias.name}") or owner(source)
                    if target:
                        yield Import(module, target, node)


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _private(name: str) -> bool:
    return name.startswith("_") and not _dunder(name)


def test_functions_are_at_most_100_lines() -> None:
    """Long functions hide several steps; split them into named ones."""
    long = []
    for module in modules().values():
        for node in ast.walk(module.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append((lines, f"{module.where(node)} {node.name}"))
    long.sort(reverse=True)
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (longest first): " + "; ".join(
        f"{where} ({lines} lines)" for lines, where in long
    )


def module_aliases(module: Module) -> dict[str, str]:
    """Local names bound to package modules (``import prover.x as m``, ``from prover
    import x``), wherever in the module they are bound."""
    aliases = {}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules():
                    local = alias.asname or alias.name.split(".")[0]
                    aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            for alias in node.names:
                if f"{source}.{alias.name}" in modules():
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
    return aliases


def dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """The dotted name an attribute chain spells, rooted at a module alias."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        base = dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def test_no_private_names_are_used_across_modules() -> None:
    """An underscore name is its module's own business: share it under a public name."""
    found = []
    for module in modules().values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ImportFrom):
                source = absolute(module, node)
                if owner(source) in (None, module.name):
                    continue
                found += [
                    f"{module.where(node)} from {source} import {alias.name}"
                    for alias in node.names
                    if _private(alias.name)
                ]
        aliases = module_aliases(module)
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                base = dotted(node.value, aliases)
                if base in modules() and base != module.name:
                    found.append(f"{module.where(node)} {base}.{node.attr}")
    assert not found, "private names used outside their module: " + "; ".join(found)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), plus modules
    that import themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first), closed:
    ``[a, b, ..., a]``."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph.get(node, set()) & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"{component} is not a cycle")


def test_no_import_cycles_between_modules() -> None:
    """A cycle makes import order matter and the modules inseparable; lazy imports
    inside functions count, since they only hide the cycle."""
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for found in imports():
        if found.imported == found.importer.name:
            continue  # a package importing its own name: nothing to resolve
        graph.setdefault(found.importer.name, set()).add(found.imported)
        where.setdefault((found.importer.name, found.imported), found.importer.where(found.node))
    report = []
    for component in cycles(graph):
        cycle = shortest_cycle(graph, component)
        steps = [f"{where[(a, b)]} {a} -> {b}" for a, b in itertools.pairwise(cycle)]
        others = len(component) - len(cycle) + 1
        more = f" (and {others} more modules in the same cycle group)" if others else ""
        report.append(", ".join(steps) + more)
    assert not report, "import cycles: " + "; ".join(report)


def test_import_contracts_hold() -> None:
    """The layer contracts of pyproject.toml, checked by import-linter."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    if not lint_imports.exists():
        lint_imports = ROOT / ".venv" / "bin" / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
