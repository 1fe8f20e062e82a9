"""``nspod version``: nspod's version, the appc spec it implements and the systemd it finds."""

from __future__ import annotations

import argparse

from stage0 import APPC_SPEC_VERSION, __version__
from stage0.host.executor import systemd_version
from stage0.options import GlobalOptions
from stage1.abi import ABI_VERSION


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser("version", help="print versions of nspod, the appc spec and systemd")
    parser.set_defaults(handler=run_version)


def run_version(options: GlobalOptions, args: argparse.Namespace) -> int:
    print(f"nspod version {__version__}")
    print(f"appc version {APPC_SPEC_VERSION}")
    print(f"stage1 ABI version {ABI_VERSION}")
    print(f"systemd version {systemd_version()}")
    return 0
