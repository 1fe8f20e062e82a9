"""``nspod version``: nspod's version, the appc spec it implements and the systemd it finds."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess

from stage0 import APPC_SPEC_VERSION, __version__
from stage0.options import GlobalOptions
from stage1.abi import ABI_VERSION


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser("version", help="print versions of nspod, the appc spec and systemd")
    parser.set_defaults(handler=run_version)


def detect_systemd() -> str:
    """``"252 (252.38-1~deb12u1)"``, with a note when systemd is not the running init."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return "not found"
    out = subprocess.run([systemctl, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.match(r"systemd (\S+(?: \([^)]*\))?)", out)
    version = match.group(1) if match else "unknown"
    # sd_booted(): the documented test for "systemd is PID 1 here".
    return version if os.path.isdir("/run/systemd/system") else f"{version}, not running as init"


def run_version(options: GlobalOptions, args: argparse.Namespace) -> int:
    print(f"nspod version {__version__}")
    print(f"appc version {APPC_SPEC_VERSION}")
    print(f"stage1 ABI version {ABI_VERSION}")
    print(f"systemd version {detect_systemd()}")
    return 0
