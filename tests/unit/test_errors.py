"""Errors grouped by kind: every error class of both stages names its kind, stage0 raises no bare
Error (a kind-named class or one of its own says what it is), and one table maps kinds to exit
codes (2 for usage, 254 for every failure of nspod's own)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from stage0.errors import (
    EXIT_CODES,
    Error,
    ErrorKind,
    ExitCode,
    NotFoundError,
    UsageError,
    kind_of,
)
from tests.conftest import REPO
from tests.unit.test_imports import modules


def error_classes() -> set[type[Error]]:
    for name in modules():
        if not name.endswith("__main__") and not name.startswith("stage1.scripts"):  # programs
            importlib.import_module(name)
    found: set[type[Error]] = set()
    todo = [Error]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.split(".")[0] in ("stage0", "stage1") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_every_error_class_names_its_kind() -> None:
    classes = error_classes()
    assert len(classes) > 30
    unnamed = sorted(f"{c.__module__}.{c.__qualname__}" for c in classes if not hasattr(c, "kind"))
    assert not unnamed
    for cls in classes:
        ErrorKind(cls.kind)  # type: ignore[attr-defined]  # a kind that exists (stage1 spells strings)


def bare_raises(path: Path) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and isinstance(node.exc.func, ast.Name)
        and node.exc.func.id == "Error"
    ]


def test_stage0_raises_no_bare_error() -> None:
    """Raise a kind-named error (stage0/errors.py) or a class of its own, never Error itself."""
    found = {
        f"{path.relative_to(REPO)}:{line}"
        for path in (REPO / "stage0").rglob("*.py")
        for line in bare_raises(path)
    }
    assert not found, sorted(found)


def test_one_table_from_kind_to_exit_code() -> None:
    assert set(EXIT_CODES) == set(ErrorKind)
    assert EXIT_CODES[kind_of(UsageError("x"))] == ExitCode.USAGE
    assert int(ExitCode.USAGE) == 2 and int(ExitCode.FAILURE) == 254
    assert EXIT_CODES[kind_of(NotFoundError("x"))] == ExitCode.FAILURE
    assert {code for kind, code in EXIT_CODES.items() if kind is not ErrorKind.USAGE} == {ExitCode.FAILURE}


def test_kinds_of_what_is_not_a_kinded_error() -> None:
    from stage1.systemd import UnitNotFound

    assert kind_of(ValueError()) is ErrorKind.INTERNAL
    assert kind_of(Error("plain")) is ErrorKind.INTERNAL
    assert kind_of(UnitNotFound("u")) is ErrorKind.NOT_FOUND  # stage1's, spelled as a string
