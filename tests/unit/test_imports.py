"""The import graph of stage0 and stage1 has no circles, counting function-local imports as edges:
a circle hidden inside a function still couples the two modules (neither can be read, tested or
moved without the other). Only the CLI imports the CLI: the domain API (stage0/api) is what every
front end and the pool keeper call; stage1 never imports stage0 (see also test_layering.py)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO

TOPS = ("stage0", "stage1")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for top in TOPS for p in sorted((REPO / top).rglob("*.py"))}


def imported(path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Every module of the tree that `path` imports anywhere (module level or inside functions);
    `from package import name` counts as importing package.name when that is a module."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if name in known and name != here:
                yield name


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imported(path, known)) for name, path in known.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph, or None; depth-first with colours."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if colour.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in colour and (found := visit(nxt)):
                return found
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(edges):
        if node not in colour and (found := visit(node)):
            return found
    return None


def test_the_import_graph_is_acyclic() -> None:
    found = cycle(graph())
    assert found is None, " -> ".join(found or [])


def test_the_detector_finds_a_circle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


# the program's entry point (``nspod``), above every front end: it picks the pool client or the CLI
ENTRY = "stage0.launch"


def test_only_the_cli_imports_the_cli() -> None:
    wrong = {
        (name, dep)
        for name, deps in graph().items()
        if not name.startswith("stage0.cli") and name != ENTRY
        for dep in deps
        if dep == "stage0.cli" or dep.startswith("stage0.cli.")
    }
    assert not wrong, sorted(wrong)


def test_stage1_never_imports_stage0() -> None:
    wrong = {
        (name, dep)
        for name, deps in graph().items()
        if name.split(".")[0] == "stage1"
        for dep in deps
        if dep.split(".")[0] == "stage0"
    }
    assert not wrong, sorted(wrong)
