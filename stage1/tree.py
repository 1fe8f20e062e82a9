"""Writing a pod's stage1 tree (see units.py for what goes in it). Idempotent: run-prepared may retry."""

from __future__ import annotations

import glob
import os
import re

from stage1.abi import Error
from stage1.atomic import write_atomic
from stage1.units import Tree, TreeFile

# where Debian and others keep systemd's shared library, whose name carries the version
_SHARED = ("/usr/lib/systemd/libsystemd-shared-*.so", "/usr/lib*/*/systemd/libsystemd-shared-*.so")


def host_systemd_version() -> int:
    """The version of the host's systemd, which boots every pod (from its shared library's name)."""
    for pattern in _SHARED:
        for path in glob.glob(pattern):
            found = re.search(r"libsystemd-shared-(\d+)", path)
            if found:
                return int(found.group(1))
    raise Error("cannot find the host's systemd in /usr", hint="install systemd and systemd-container")


def write_tree(root: str, tree: Tree) -> None:
    for directory in tree.dirs:
        os.makedirs(os.path.join(root, directory), mode=0o755, exist_ok=True)
    write_files(root, tree.files)
    write_programs(root, tree.programs)
    for path, destination in tree.links.items():
        link = os.path.join(root, path)
        os.makedirs(os.path.dirname(link), mode=0o755, exist_ok=True)
        if os.path.islink(link) or os.path.exists(link):
            os.unlink(link)
        os.symlink(destination, link)


def write_programs(root: str, programs: dict[str, str]) -> None:
    """Copies of the host's built programs (path in the tree → where built); also into a running
    pod's tree, where a command entered with a working directory of its own needs nspod-pidns."""
    for path, source in programs.items():
        try:
            with open(source, "rb") as file:
                program = file.read()
        except FileNotFoundError:
            continue  # not built here: what needs it is refused before (stage1/pidns.py)
        target = os.path.join(root, path)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        write_atomic(target, program, mode=0o755, sync=False)


def write_files(root: str, files: dict[str, TreeFile]) -> None:
    """Each file in place at once (written aside, then renamed): a reading systemd sees whole files."""
    for path, file in files.items():
        target = os.path.join(root, path)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        write_atomic(target, file.content, mode=file.mode, sync=False)
