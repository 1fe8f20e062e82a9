"""Run nspod and act at one named moment of its writes (the fault tests of issue #23):

    python -m tests.harness.at_moment ACTION MOMENT nspod-argument…   (PYTHONPATH: the repository)

ACTION is ``kill`` (SIGKILL itself), ``stop`` (SIGSTOP itself: the test sends SIGCONT) or
``fill=FILE`` (write FILE until its file system is full, then go on). The moment is found by
watching nspod's own file calls, so the action lands exactly there, not somewhere near it.
Moments: ``tmp-lock-created`` (a workspace's lock file), ``workspace-made``,
``locks-lock-created`` (an image's lock file), ``blob-placed``, ``layer-placed`` (a store write),
``pod-made`` (a new pod's directory), ``pod-file-placed`` (the first file written into a pod
being prepared: its images are fetched and held by then), ``netns-made`` (a pod's network
namespace file in /run/netns: its teardown record is written, its pod runs nowhere)."""

from __future__ import annotations

import os
import runpy
import signal
import sys
from typing import Any

ACTION, MOMENT = sys.argv.pop(1), sys.argv.pop(1)
_open, _mkdir, _replace, _rename = os.open, os.mkdir, os.replace, os.rename
_placed: list[str] = []


def _act() -> None:
    if ACTION in ("kill", "stop"):
        os.kill(os.getpid(), signal.SIGKILL if ACTION == "kill" else signal.SIGSTOP)
        return
    with open(ACTION.removeprefix("fill="), "wb") as filler:  # the disk fills up now
        try:
            while True:
                filler.write(b"\0" * (1 << 16))
                filler.flush()
        except OSError:
            pass


def _at(moment: str, path: Any, parent: str = "images") -> None:
    parts = str(path).split(os.sep)
    if moment == MOMENT and len(parts) > 2 and parts[-3] == parent:
        _act()


def _where(path: Any) -> str:
    return str(path).split(os.sep)[-2] if os.sep in str(path) else ""


def hooked_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
    fd = _open(path, flags, *args, **kwargs)
    if flags & os.O_CREAT and str(path).endswith(".lock"):
        _at(f"{_where(path)}-lock-created", path)  # tmp-lock-created, locks-lock-created
    elif flags & os.O_CREAT and str(path).startswith("/run/netns/nspod-") and MOMENT == "netns-made":
        _act()
    return fd


def hooked_mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
    _mkdir(path, *args, **kwargs)
    if _where(path) == "tmp":
        _at("workspace-made", path)
    elif _where(path) == "embryo":
        _at("pod-made", path, parent="pods")


def hooked_replace(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
    _replace(source, target, *args, **kwargs)
    if _where(target) == "blobs":
        _at("blob-placed", target)
    elif len(parts := str(target).split(os.sep)) > 3 and parts[-3] == "prepare" and not _placed:
        _placed.append(target)
        _at("pod-file-placed", target, parent="prepare")


def hooked_rename(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
    _rename(source, target, *args, **kwargs)
    if _where(target) == "layers":
        _at("layer-placed", target)


os.open, os.mkdir, os.replace, os.rename = hooked_open, hooked_mkdir, hooked_replace, hooked_rename  # type: ignore[assignment]
sys.argv[0] = "nspod"
runpy.run_module("stage0", run_name="__main__", alter_sys=True)
