"""The one way stage0 runs another program (mkosi's ``run()``): the argv is logged under
``--debug``, a missing program and a failure become errors that name the command and quote the
last line it wrote to stderr. systemd itself is reached over D-Bus (stage1/systemd.py), never by
running systemctl."""

from __future__ import annotations

import logging
import shlex
import subprocess

from stage0.errors import Error

log = logging.getLogger(__name__)


class CommandFailed(Error):
    hint = "rerun with --debug to see the command and its output"


class ProgramMissing(Error):
    pass


def run(
    argv: list[str],
    *,
    check: bool = True,
    capture: bool = True,
    what: str | None = None,
    timeout: float | None = None,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to its end. ``capture``: keep its stdout and stderr (else they are ours);
    ``check``: a non-zero exit raises :class:`CommandFailed`; ``what``: what the command does,
    for the error ("copying the image"); ``timeout``: seconds before it is killed and
    :class:`CommandFailed` raised; ``pass_fds``: descriptors it inherits (its stdin is /dev/null
    then: a server's callers have none to give)."""
    log.debug("running %s", shlex.join(argv))
    try:
        stdin = subprocess.DEVNULL if pass_fds or timeout is not None else None
        result = subprocess.run(
            argv,
            capture_output=capture,
            text=True,
            check=False,
            timeout=timeout,
            pass_fds=pass_fds,
            stdin=stdin,
        )
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"{what or argv[0]} did not finish in {timeout:g} s") from None
    except FileNotFoundError:
        hint = f"install the package that provides {argv[0]}"
        raise ProgramMissing(f"{argv[0]} is not installed", hint=hint) from None
    if check and result.returncode != 0:
        last = (result.stderr or "").strip().splitlines()[-1:] or [f"exit status {result.returncode}"]
        raise CommandFailed(f"{what or argv[0]} failed: {last[0]}")
    if capture and result.stderr:
        log.debug("%s said: %s", argv[0], result.stderr.strip())
    return result
