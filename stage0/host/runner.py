"""The one way stage0 runs another program (mkosi's ``run()``): the argv is logged under
``--debug``, a missing program and a failure become errors that name the command and quote the
last line it wrote to stderr. systemd itself is reached over D-Bus (stage1/systemd.py), never by
running systemctl."""

from __future__ import annotations

import logging
import shlex
import subprocess

from stage0.errors import Error, ErrorKind

log = logging.getLogger(__name__)


class CommandFailed(Error):
    kind = ErrorKind.UNAVAILABLE
    hint = "rerun with --debug to see the command and its output"


class ProgramMissing(Error):
    kind = ErrorKind.FAILED_PRECONDITION


# for the callers of spawn: what a stream is, and what a wait past its timeout raises
PIPE, DEVNULL = subprocess.PIPE, subprocess.DEVNULL
Timeout = subprocess.TimeoutExpired


def spawn(argv: list[str], *, stdin: int, stdout: int, stderr: int) -> subprocess.Popen[bytes]:
    """Start ``argv`` and leave it running (a CRI exec's command, streamed while it runs); each
    stream is PIPE, DEVNULL or a descriptor of ours. The caller waits for it."""
    log.debug("starting %s", shlex.join(argv))
    try:
        return subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr)
    except FileNotFoundError:
        hint = f"install the package that provides {argv[0]}"
        raise ProgramMissing(f"{argv[0]} is not installed", hint=hint) from None


def run(
    argv: list[str], *, check: bool = True, capture: bool = True, what: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to its end. ``capture``: keep its stdout and stderr (else they are ours);
    ``check``: a non-zero exit raises :class:`CommandFailed`; ``what``: what the command does,
    for the error ("copying the image")."""
    log.debug("running %s", shlex.join(argv))
    try:
        result = subprocess.run(argv, capture_output=capture, text=True, check=False)
    except FileNotFoundError:
        hint = f"install the package that provides {argv[0]}"
        raise ProgramMissing(f"{argv[0]} is not installed", hint=hint) from None
    if check and result.returncode != 0:
        last = (result.stderr or "").strip().splitlines()[-1:] or [f"exit status {result.returncode}"]
        raise CommandFailed(f"{what or argv[0]} failed: {last[0]}")
    if capture and result.stderr:
        log.debug("%s said: %s", argv[0], result.stderr.strip())
    return result
