"""Run nspod and SIGKILL it at one named moment of a store write (tests of issue #23 item 19):

    python tests/net/kill_at.py MOMENT nspod-argument…

The moment is found by watching nspod's own file calls, so the kill lands exactly there, not
somewhere near it."""

from __future__ import annotations

import os
import runpy
import signal
import sys
from typing import Any

MOMENT = sys.argv.pop(1)
_open, _mkdir, _replace, _rename = os.open, os.mkdir, os.replace, os.rename


def _at(moment: str, path: Any) -> None:
    parts = str(path).split(os.sep)
    if moment == MOMENT and len(parts) > 2 and parts[-3] == "images":
        os.kill(os.getpid(), signal.SIGKILL)


def _where(path: Any) -> str:
    return str(path).split(os.sep)[-2] if os.sep in str(path) else ""


def hooked_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
    fd = _open(path, flags, *args, **kwargs)
    if flags & os.O_CREAT and str(path).endswith(".lock"):
        _at(f"{_where(path)}-lock-created", path)  # tmp-lock-created, locks-lock-created
    return fd


def hooked_mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
    _mkdir(path, *args, **kwargs)
    if _where(path) == "tmp":
        _at("workspace-made", path)


def hooked_replace(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
    _replace(source, target, *args, **kwargs)
    if _where(target) == "blobs":
        _at("blob-placed", target)


def hooked_rename(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
    _rename(source, target, *args, **kwargs)
    if _where(target) == "layers":
        _at("layer-placed", target)


os.open, os.mkdir, os.replace, os.rename = hooked_open, hooked_mkdir, hooked_replace, hooked_rename  # type: ignore[assignment]
sys.argv[0] = "nspod"
runpy.run_module("stage0", run_name="__main__", alter_sys=True)
