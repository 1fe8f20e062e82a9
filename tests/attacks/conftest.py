"""The attack suite: what an attacker who controls an image tries from inside an app, each attack a
small static C program (``programs/*.c``) or busybox shell in the image, run by a real nspod in a
real test host. A test here names the finding it guards against (issue and item) and fails when the
attack works. It grows with every finding: one file a kind of way out (mounts, user namespaces,
/proc, network, …)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from stage0.images.aci.build import build_aci
from tests.conftest import REPO
from tests.integration.test_pods import APPLETS, Nspod, nspod

PROGRAMS = Path(__file__).resolve().parent / "programs"


def compile_program(name: str, out: Path) -> Path:
    """programs/NAME.c built static (images carry no libc), into ``out``."""
    binary = out / name
    subprocess.run(
        ["gcc", "-static", "-O2", "-Wall", "-Werror", "-o", str(binary), str(PROGRAMS / f"{name}.c")],
        check=True,
        capture_output=True,
    )
    return binary


@pytest.fixture(scope="session")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every attack program, built once a session."""
    out = tmp_path_factory.mktemp("attacks")
    return {p.stem: compile_program(p.stem, out) for p in sorted(PROGRAMS.glob("*.c"))}


def attack_image(
    directory: Path,
    exec_: list[str],
    *,
    programs: Mapping[str, Path] | None = None,
    files: Mapping[str, str] | None = None,
    links: Mapping[str, str] | None = None,
    app: Mapping[str, object] | None = None,
    name: str = "example.com/attack",
    user: str = "0",
    group: str = "0",
) -> Path:
    """An image an attacker made: busybox, the attack ``programs`` in /bin, extra ``files`` (path →
    text), ``links`` (path → symlink target, any shape) and manifest ``app`` keys (mountPoints,
    ports, isolators, …) over the defaults."""
    root = directory / "layout"
    rootfs = root / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    shutil.copy("/bin/busybox", rootfs / "bin/busybox")
    for applet in (*APPLETS, "cp", "chmod", "stat", "grep", "head", "mkdir", "ln", "rm", "touch"):
        if not (rootfs / "bin" / applet).exists():
            (rootfs / "bin" / applet).symlink_to("busybox")
    for program, binary in (programs or {}).items():
        shutil.copy(binary, rootfs / "bin" / program)
    (rootfs / "etc/passwd").write_text("root:x:0:0:root:/:/bin/sh\nworker:x:1000:1000::/:/bin/sh\n")
    (rootfs / "etc/group").write_text("root:x:0:\nworker:x:1000:\n")
    for path, text in (files or {}).items():
        target = rootfs / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for path, pointee in (links or {}).items():
        link = rootfs / path.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(pointee, link)
    manifest = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": [{"name": "version", "value": "1.0"}],
        "app": {"exec": exec_, "user": user, "group": group, **(app or {})},
    }
    (root / "manifest").write_text(json.dumps(manifest))
    aci = directory / "attack.aci"
    build_aci(str(root), str(aci))
    return aci


__all__ = ["REPO", "Nspod", "attack_image", "compile_program", "nspod", "programs"]
