"""The ``nspod`` command line: the parser, the verb-group table and the one place errors are caught.

No business logic lives here. Each verb group is a module (``stage0/cmd_*.py``) that adds its
parsers and sets ``handler``; handlers import what they need lazily, so ``nspod version`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from stage0 import __version__
from stage0.errors import Error, ExitCode
from stage0.options import GlobalOptions, add_global_arguments

# The verb-group table: module name → it registers its verbs. Order is the order in --help.
VERB_GROUPS: tuple[str, ...] = (
    "stage0.cmd_version",
    "stage0.cmd_run",
    "stage0.cmd_pods",
    "stage0.cmd_podfiles",
    "stage0.cmd_fetch",
    "stage0.cmd_trust",
    "stage0.cmd_image",
)

Handler = Callable[[GlobalOptions, argparse.Namespace], int | None]


class VerbGroup(Protocol):
    def register(self, verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nspod",
        description="nspod runs App Container pods as native systemd services.",
        epilog="Exit status: 254 when nspod itself fails, 2 for usage errors; "
        "'nspod run' passes the app's exit status through.",
    )
    add_global_arguments(parser)
    parser.add_argument("--version", action="version", version=f"nspod {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name in VERB_GROUPS:
        group: VerbGroup = importlib.import_module(name)
        group.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit 2 here
    options = GlobalOptions.from_args(args)
    from stage0.log import log_setup

    log_setup(options.debug)
    handler: Handler = args.handler
    try:
        return int(handler(options, args) or ExitCode.OK)
    except Error as error:
        if options.debug:
            _print_traceback()
        print(f"nspod: {error.diagnostics()}", file=sys.stderr)
        return ExitCode.FAILURE
    except KeyboardInterrupt:
        print("nspod: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `nspod image cat-manifest x.aci | head`): not our failure.
        sys.stderr.close()
        return ExitCode.OK
    except Exception as error:  # a bug: say so, keep the traceback for --debug
        if options.debug:
            _print_traceback()
        print(
            f"nspod: internal error: {type(error).__name__}: {error}\n"
            "  hint: this is a bug in nspod; rerun with --debug and report the traceback",
            file=sys.stderr,
        )
        return ExitCode.FAILURE


def _print_traceback() -> None:
    import traceback  # only on the error path: keeps start-up lean

    traceback.print_exc()
