"""The shape of the domain package: module sizes, the import graph, its cycles.

`python -m sft_local.architecture [--modules]` prints them; the architecture test asserts on the
same graph, so the figures people read and the rule the suite enforces cannot disagree.
Only imports executed at run time count, unless asked (`--type-checking`): `if TYPE_CHECKING:`
blocks make no cycle, but they are still a dependency, which layering rules care about.
"""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = {"sft_pipeline": ROOT / "shared", "sft_local": ROOT / "local"}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    lines: int
    imports: frozenset[str]


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, name: str, is_package: bool, type_checking: bool) -> Iterator[str]:
    package = name if is_package else name.rpartition(".")[0]
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if not type_checking and isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            yield origin
            yield from (f"{origin}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))


def modules(package: str, type_checking: bool = False) -> dict[str, Module]:
    base = PACKAGE_DIRS[package]
    found: dict[str, Module] = {}
    for path in sorted((base / package).rglob("*.py")):
        name = _module_name(path, base)
        source = path.read_text()
        tree = ast.parse(source)
        imports = frozenset(_imports(tree, name, path.name == "__init__.py", type_checking))
        found[name] = Module(name, path, len(source.splitlines()), imports)
    return found


def _with_parents(target: str) -> Iterator[str]:
    """Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first: those count too."""
    parts = target.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


def import_graph(package: str, type_checking: bool = False) -> dict[str, set[str]]:
    """Module -> the modules of the same package it makes Python run, at run time (and those
    it imports for type checking only, with ``type_checking``)."""
    found = modules(package, type_checking)
    graph: dict[str, set[str]] = {}
    for name, module in found.items():
        own_parents = set(_with_parents(name))
        graph[name] = {
            implied
            for target in module.imports
            for implied in _with_parents(target)
            if implied in found and implied not in own_parents
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def package_edges(graph: dict[str, set[str]], depth: int = 2) -> dict[str, set[str]]:
    """The graph folded to sub-packages (``sft_pipeline.adapters``), for reading."""
    folded: dict[str, set[str]] = defaultdict(set)
    for source, targets in graph.items():
        head = ".".join(source.split(".")[:depth])
        for target in targets:
            tail = ".".join(target.split(".")[:depth])
            if tail != head:
                folded[head].add(tail)
    return folded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="sft_pipeline", choices=sorted(PACKAGE_DIRS))
    parser.add_argument("--modules", action="store_true", help="edges between modules too")
    parser.add_argument(
        "--type-checking", action="store_true", help="count `if TYPE_CHECKING:` imports too"
    )
    args = parser.parse_args(argv)
    found = modules(args.package, args.type_checking)
    graph = import_graph(args.package, args.type_checking)
    print(f"{args.package}: {len(found)} modules, {sum(m.lines for m in found.values())} lines")
    for module in sorted(found.values(), key=lambda m: -m.lines):
        print(f"  {module.lines:5d}  {module.name}")
    print("imports between sub-packages:")
    for source, targets in sorted(package_edges(graph).items()):
        print(f"  {source} -> {', '.join(sorted(targets))}")
    if args.modules:
        print("imports between modules:")
        for source, targets in sorted(graph.items()):
            if targets:
                print(f"  {source} -> {', '.join(sorted(targets))}")
    outside = sorted(
        {
            f"{name} -> {target}"
            for name, module in found.items()
            for target in module.imports
            if args.package == "sft_pipeline" and target.split(".")[0] == "sft_local"
        }
    )
    print(f"imports of sft_local: {', '.join(outside) if outside else 'none'}")
    found_cycles = cycles(graph)
    print(f"cycles: {len(found_cycles)}")
    for group in found_cycles:
        print(f"  {' <-> '.join(group)}")


if __name__ == "__main__":
    main()
