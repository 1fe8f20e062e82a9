"""The ``nspod`` command line: the parser, the verb-group table and the one place errors are caught.

No business logic lives here. Each verb group is a module (``stage0/cli/*.py``) that adds its
parsers and sets ``handler``; handlers import what they need lazily, so ``nspod version`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, Protocol

from stage0 import __version__
from stage0.errors import EXIT_CODES, Error, ExitCode, disk_full, is_full, kind_of
from stage0.options import GlobalOptions, add_global_arguments
from stage0.settings import global_flags_with_values

# The verb table: verb → the module (one per verb group) that registers it. Order is --help's.
VERBS: dict[str, str] = {
    "version": "stage0.cli.version",
    "run": "stage0.cli.run",
    "prepare": "stage0.cli.run",
    "run-prepared": "stage0.cli.run",
    "list": "stage0.cli.ps",
    "ps": "stage0.cli.ps",
    "inspect": "stage0.cli.inspect",
    "stats": "stage0.cli.stats",
    "status": "stage0.cli.pods",
    "stop": "stage0.cli.pods",
    "rm": "stage0.cli.pods",
    "gc": "stage0.cli.pods",
    "enter": "stage0.cli.pods",
    "cat-manifest": "stage0.cli.pods",
    "logs": "stage0.cli.pods",
    "events": "stage0.cli.events",
    "exec": "stage0.cli.exec",
    "kill": "stage0.cli.kill",
    "restart": "stage0.cli.restart",
    "port": "stage0.cli.port",
    "top": "stage0.cli.top",
    "cp": "stage0.cli.cp",
    "update": "stage0.cli.update",
    "auto-update": "stage0.cli.autoupdate",
    "app": "stage0.cli.app",
    "pool": "stage0.cli.pool",
    "pod": "stage0.cli.podfiles",
    "fetch": "stage0.cli.fetch",
    "trust": "stage0.cli.trust",
    "image": "stage0.cli.image",
    "metadata-service": "stage0.cli.mds",
    "cri": "stage0.cli.cri",
}
_TAKES_VALUE = global_flags_with_values()

Handler = Callable[[GlobalOptions, argparse.Namespace], int | None]


class VerbGroup(Protocol):
    def register(self, verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def requested_verb(argv: Sequence[str]) -> str | None:
    """The verb on the command line, skipping global options (and their values)."""
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in _TAKES_VALUE:
            skip = True
        elif not token.startswith("-"):
            return token if token in VERBS else None
    return None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; for a known verb only its group is built (start-up time), else every group."""
    parser = argparse.ArgumentParser(
        prog="nspod",
        description="nspod runs App Container pods as native systemd services.",
        epilog="Exit status: 254 when nspod itself fails, 2 for usage errors; "
        "'nspod run' passes the app's exit status through.",
    )
    add_global_arguments(parser)
    parser.add_argument("--version", action="version", version=f"nspod {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    verb = requested_verb(argv)
    for name in dict.fromkeys([VERBS[verb]] if verb else VERBS.values()):
        group: VerbGroup = importlib.import_module(name)
        group.register(verbs)
    return parser


def subparsers(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def leaf(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)verb ``args`` were parsed for: ``nspod image list`` → image list's."""
    while (sub := subparsers(parser)) is not None and getattr(args, sub.dest, None) in sub.choices:
        parser = sub.choices[getattr(args, sub.dest)]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)  # usage errors exit 2 here
    if extra:  # said by the verb's own parser, with its usage
        leaf(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        options = GlobalOptions.from_args(args)
    except Error as error:  # a --stage1 that is no flavor nor a path
        print(f"nspod: {error.diagnostics()}", file=sys.stderr)
        return EXIT_CODES[kind_of(error)]
    from stage0.log import log_setup

    log_setup(options.debug)
    handler: Handler = args.handler
    try:
        from stage0.host.access import check

        check(" ".join(leaf(parser, args).prog.split()[1:]), options.dir)
        return int(handler(options, args) or ExitCode.OK)
    except Error as error:
        if options.debug:
            _print_traceback()
        print(f"nspod: {error.diagnostics()}", file=sys.stderr)
        return EXIT_CODES[kind_of(error)]
    except KeyboardInterrupt:
        print("nspod: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `nspod image cat-manifest x.aci | head`): not our failure.
        sys.stderr.close()
        return ExitCode.OK
    except OSError as error:
        if not is_full(error):
            return _internal_error(error, options.debug)
        if options.debug:
            _print_traceback()
        # what was being written is cleaned up on the way out (workspaces, half-made pods)
        where = os.path.dirname(str(error.filename)) if error.filename else options.dir
        print(f"nspod: {disk_full(where).diagnostics()}", file=sys.stderr)
        return ExitCode.FAILURE
    except Exception as error:  # a bug: say so, keep the traceback for --debug
        return _internal_error(error, options.debug)


def _internal_error(error: Exception, debug: bool) -> int:
    if debug:
        _print_traceback()
    print(
        f"nspod: internal error: {type(error).__name__}: {error}\n"
        "  hint: this is a bug in nspod; rerun with --debug and report the traceback",
        file=sys.stderr,
    )
    return ExitCode.FAILURE


def entry() -> NoReturn:
    """The ``nspod`` command: :func:`main`, then out without the interpreter's teardown of every
    module and object (~10 ms), which has nothing left to do: files, locks, connections and threads
    are closed or joined by the time ``main`` returns."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        # the reader may have gone away, or main() closed the stream
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _print_traceback() -> None:
    import traceback  # only on the error path: keeps start-up lean

    traceback.print_exc()
