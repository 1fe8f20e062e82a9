"""What the streaming server needs from the runtime (crisrv implements it by resolving IDs), and
the requests it serves, as data.

The server keeps no state of the runtime's: a token stands for one request, and when the client
connects the backend says where that container or sandbox is now. Errors the backend raises are
``stage0.errors.Error``s (not found, not running): the server answers the HTTP request with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ExecRequest:
    container_id: str
    cmd: tuple[str, ...]
    tty: bool = False
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True


@dataclass(frozen=True)
class AttachRequest:
    container_id: str
    tty: bool = False
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True


@dataclass(frozen=True)
class PortForwardRequest:
    sandbox_id: str
    ports: tuple[int, ...] = ()  # informative: kubelet forwards whatever port a client asks for


Request = ExecRequest | AttachRequest | PortForwardRequest


@dataclass(frozen=True)
class Container:
    """Where a container's app runs: the pod's directory and the app's name in it."""

    pod_dir: str
    app: str


class Source(Protocol):
    def read(self, size: int = ...) -> bytes:
        """Up to ``size`` bytes; b"" at the end."""


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...


def _never() -> bool:
    return False


@dataclass(frozen=True)
class AttachIO:
    """The client's ends of an attach: each is None when the client did not ask for it. ``sizes``
    yields the client's terminal size (columns, rows) as it changes (tty only)."""

    stdin: Source | None
    stdout: Sink | None
    stderr: Sink | None
    tty: bool
    sizes: Iterator[tuple[int, int]]
    gone: Callable[[], bool] = _never  # the client went away (its connection ended)


class Backend(Protocol):
    def container(self, container_id: str) -> Container:
        """The running container ``container_id``; raises Error if there is none or it does not run."""

    def sandbox_netns(self, sandbox_id: str) -> str | None:
        """The path of the running sandbox's network namespace (``/run/netns/…`` or
        ``/proc/PID/ns/net``); None when the sandbox uses the host's network."""

    def attach(self, container_id: str, io: AttachIO) -> None:
        """Relays the container's main process stdio to ``io`` until the container ends or the
        client's stdin does (stdin requested) or the client goes away; then returns. The
        container's output must also keep reaching its log while attached."""
