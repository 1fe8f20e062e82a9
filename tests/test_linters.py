"""Linters are tests: ruff (lint and format), mypy --strict, shellcheck."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, tool


def run(*argv: str) -> None:
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_check() -> None:
    run(tool("ruff"), "check", ".")


def test_ruff_format() -> None:
    run(tool("ruff"), "format", "--check", "--diff", ".")


def test_mypy_strict() -> None:
    run(sys.executable, "-m", "mypy")


def test_shellcheck() -> None:
    scripts = sorted(
        str(p.relative_to(REPO))
        for p in [
            *REPO.glob("tests/harness/*.sh"),
            *REPO.glob(".ci/*"),
            *REPO.glob("stage1/scripts/*.sh"),
            *REPO.glob("packaging/*.sh"),
            *REPO.glob("examples/*.sh"),
            *REPO.glob("vagrant/*.sh"),
        ]
    )
    run(
        tool("shellcheck"), "--external-sources", "--severity=warning", *scripts
    )  # follows the sourced parts


def test_files_stay_under_400_lines() -> None:
    """style.md: files of 100–400 lines, named for what they hold (generated golden files aside)."""
    sources = [
        p
        for top in ("stage0", "stage1", "tests", "bench", "units", ".ci")
        for p in (REPO / top).rglob("*")
        if p.is_file()
        and p.suffix in (".py", ".sh", ".service", ".timer", "")
        and "golden" not in p.parts
        and "__pycache__" not in p.parts
        and not p.name.startswith("api_pb2")  # generated: stage0/cri/proto (packaging/gen-cri-proto.sh)
        and b"\0" not in p.read_bytes()[:4096]  # a built program (stage1/helpers: make helpers)
    ]
    long = [f"{p.relative_to(REPO)}: {n}" for p in sources if (n := len(p.read_bytes().splitlines())) > 400]
    assert long == []
