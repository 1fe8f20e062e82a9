"""CRI container log files: where a container's file is, making it, and ReopenContainerLog.

The lines themselves are written inside the pod by the container's log writer
(``stage1/scripts/cri_log.py``, one per container, wired by ``stage1/crilog.py``): the CRI
service is not on the way of a container's output, so its restart loses no line. What is left
here is the host's side: the path kubelet asked for (``<sandbox log_directory>/<container
log_path>``), the file made before the container starts (kubelet and critest open it as soon as
the container runs), and a new file after kubelet renamed the old one for rotation. The writer
checks before each write whether the file at the path is still the one it has open, and moves
to the new one when it is not; until then, lines go on into the renamed file, as with containerd.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from stage1.abi import Error

MODE = 0o640  # root's, readable by group adm-like log readers only (containerd's mode)
DIR_MODE = 0o755


class LogPathError(Error):
    kind = "invalid-argument"  # the domain API's ErrorKind (stage0/cri/status.py KIND_CODES)
    hint = "log_path is relative to the pod sandbox's log_directory and stays inside it"


class NotRunning(Error):
    """ReopenContainerLog of a container that is not running."""

    kind = "failed-precondition"

    hint = "only a running container's log can be reopened"


def container_log_path(log_directory: str, log_path: str) -> str:
    """The host path of a container's log file, or "" when the sandbox or container names none
    (then only the journal has its output). kubelet gives ``<container>/<restart>.log``."""
    if not log_directory or not log_path:
        return ""
    if not os.path.isabs(log_directory):
        raise LogPathError(f"the sandbox's log directory {log_directory!r} is not an absolute path")
    # (an absolute log_path inside log_directory, which some clients send, is taken as it is)
    joined = os.path.normpath(os.path.join(log_directory, log_path))
    if not joined.startswith(os.path.normpath(log_directory) + os.sep):
        raise LogPathError(f"the container's log path {log_path!r} leaves {log_directory}")
    return joined


def create_log_file(path: str) -> None:
    """The container's log file, empty, mode 0640 (its directory made as kubelet would); one that
    is there is kept as it is (a restarted service, a container started again)."""
    os.makedirs(os.path.dirname(path), mode=DIR_MODE, exist_ok=True)
    # O_NOFOLLOW: a link planted at the path must not make root write elsewhere
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, MODE)
    except OSError as error:
        raise Error(
            f"cannot create the container log file {path}: {error.strerror}",
            hint="check that the log directory exists and is writable by root",
        ) from None
    os.close(fd)


def reopen(path: str, *, running: bool) -> None:
    """ReopenContainerLog: a fresh file at ``path`` (kubelet renamed the old one), which the
    container's writer takes up with its next write. The file is there when this returns."""
    if not running:
        raise NotRunning("the container is not running, so its log cannot be reopened")
    if not path:
        return  # no log file: nothing to reopen (containerd answers the same)
    create_log_file(path)


def remove_log_file(path: str) -> None:
    """RemoveContainer removes the log file too (containerd's rule; kubelet's rotated files stay)."""
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


# --- reading, for ``nspod`` and tests (kubelet has its own reader) ---

_LINE = re.compile(rb"(\S+) (stdout|stderr) ([FP]) (.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class LogRecord:
    time: datetime
    stream: str  # stdout | stderr
    partial: bool
    text: bytes


def parse_time(stamp: str) -> datetime:
    """Go's RFC3339Nano (up to nine digits of a second, any offset) to a UTC datetime (µs)."""
    found = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", stamp)
    if found is None:
        raise ValueError(f"not an RFC 3339 time: {stamp!r}")
    base, fraction, zone = found.groups()
    micro = (fraction or "").ljust(6, "0")[:6]
    offset = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{base}.{micro}{offset}").astimezone(UTC)


def parse_line(line: bytes) -> LogRecord:
    found = _LINE.fullmatch(line.rstrip(b"\n"))
    if found is None:
        raise ValueError(f"not a CRI log line: {line[:80]!r}")
    stamp, stream, tag, text = found.groups()
    return LogRecord(parse_time(stamp.decode()), stream.decode(), tag == b"P", text)


def read_lines(path: str) -> list[tuple[str, bytes]]:
    """The file's (stream, line) pairs, partial records joined into their lines."""
    lines: list[tuple[str, bytes]] = []
    pending: dict[str, bytes] = {}
    with open(path, "rb") as file:
        for raw in file:
            record = parse_line(raw)
            text = pending.pop(record.stream, b"") + record.text
            if record.partial:
                pending[record.stream] = text
            else:
                lines.append((record.stream, text))
    return lines
