"""Kubernetes' remotecommand channel protocol (v4.channel.k8s.io) over SPDY streams, for exec and
attach: the client opens an error stream, then stdin, stdout, stderr (not with a tty) and resize
(with a tty) as it was asked; each carries a ``streamtype`` header. When the command ends the
error stream carries one JSON metav1.Status: Success, or Failure with reason NonZeroExitCode and
the exit code as the message of a cause of type ExitCode (what client-go's errorDecoderV4 reads).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from stage0.cri.streaming.session import Stream

PROTOCOL = "v4.channel.k8s.io"
STREAM_TIMEOUT = 30.0  # for the client to open every stream it was asked for (kubelet: 30 s)


def status(exit_code: int | None, message: str = "") -> bytes:
    """The v4 error stream's message: exit code 0 is Success; another code (or a message without a
    code: the command could not run) is Failure."""
    if exit_code == 0 and not message:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    body: dict[str, object] = {"metadata": {}, "status": "Failure"}
    if exit_code is not None and not message:
        body["message"] = f"command terminated with non-zero exit code: exit status {exit_code}"
        body["reason"] = "NonZeroExitCode"
        body["details"] = {"causes": [{"reason": "ExitCode", "message": str(exit_code & 0xFF)}]}
    else:
        body["message"] = message
        body["reason"] = "InternalError"
        body["code"] = 500
    return json.dumps(body).encode()


class ResizeDecoder:
    """The resize stream: a sequence of JSON objects {"Width": w, "Height": h}, not delimited
    (client-go's json.Encoder happens to add newlines; nothing promises them)."""

    def __init__(self) -> None:
        self._text = ""
        self._json = json.JSONDecoder()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        self._text += data.decode("utf-8", "replace")
        sizes = []
        while self._text.strip():
            self._text = self._text.lstrip()
            try:
                value, end = self._json.raw_decode(self._text)
            except json.JSONDecodeError:
                if len(self._text) > 4096:  # not a size that is still arriving: drop it
                    self._text = ""
                break
            self._text = self._text[end:]
            if isinstance(value, dict):
                width, height = value.get("Width", 0), value.get("Height", 0)
                if (
                    isinstance(width, int)
                    and isinstance(height, int)
                    and 0 < width < 65536
                    and 0 < height < 65536
                ):
                    sizes.append((width, height))
        return sizes


def sizes(stream: Stream | None) -> Iterator[tuple[int, int]]:
    """The terminal sizes the client sends on its resize stream, as they come; ends with it."""
    if stream is None:
        return
    decoder = ResizeDecoder()
    while data := stream.read():
        yield from decoder.feed(data)


class Channels:
    """Collects one connection's streams by type until those the request implies are open."""

    def __init__(self, *, stdin: bool, stdout: bool, stderr: bool, tty: bool) -> None:
        self.expected = {"error"} | {
            kind
            for kind, wanted in (
                ("stdin", stdin),
                ("stdout", stdout),
                ("stderr", stderr and not tty),
                ("resize", tty),
            )
            if wanted
        }
        self.streams: dict[str, Stream] = {}
        self.extra: list[Stream] = []
        self._cond = threading.Condition()

    def add(self, stream: Stream) -> None:
        with self._cond:
            if stream.kind in self.expected and stream.kind not in self.streams:
                self.streams[stream.kind] = stream
                self._cond.notify_all()
            else:
                self.extra.append(stream)  # unasked: nothing is written to it, it is closed at the end

    def wait(self, timeout: float = STREAM_TIMEOUT) -> bool:
        """True once every expected stream is open; after ``timeout``, whether the error stream
        is (a client asked for less than the request said gets what it opened)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while set(self.streams) != self.expected:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "error" in self.streams
                self._cond.wait(left)
            return True

    def get(self, kind: str) -> Stream | None:
        return self.streams.get(kind)

    def finish(self, message: bytes) -> None:
        """Writes the status on the error stream and half-closes every stream."""
        error = self.streams.get("error")
        if error is not None:
            with contextlib.suppress(OSError):
                error.write(message)
        for stream in [*self.streams.values(), *self.extra]:
            stream.close()


class Running(Protocol):
    """A command being run (stage0/cri/exec.py's Process): its ends as descriptors."""

    stdin: int | None
    stdout: int | None
    stderr: int | None

    def close_stdin(self) -> None: ...

    def resize(self, width: int, height: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def close(self) -> None: ...


def serve_process(channels: Channels, process: Running) -> None:
    """Relays the channels to ``process`` until it ends and its output is sent; then the status."""
    stdin, resize = channels.get("stdin"), channels.get("resize")
    outputs = [
        _thread(_pump_out, fd, channels.get(kind))
        for fd, kind in ((process.stdout, "stdout"), (process.stderr, "stderr"))
        if fd is not None
    ]
    if stdin is not None and process.stdin is not None:
        _thread(_pump_in, stdin, process)
    if resize is not None:
        _thread(_pump_sizes, resize, process)
    code = process.wait()
    for thread in outputs:
        thread.join(10.0)  # a pty's master reads EIO once the last holder of its slave is gone
    channels.finish(status(code))


def _thread(target: Callable[..., object], *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _pump_out(fd: int, stream: Stream | None) -> None:
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: a pty whose other side is closed
                data = b""
            if not data:
                break
            if stream is not None:
                stream.write(data)
    except OSError:
        pass  # the client went away; the command runs to its end regardless
    finally:
        if stream is not None:
            stream.close()


def _pump_sizes(resize: Stream, process: Running) -> None:
    for width, height in sizes(resize):
        process.resize(width, height)


def _pump_in(stream: Stream, process: Running) -> None:
    assert process.stdin is not None
    try:
        while data := stream.read():
            while data:
                data = data[os.write(process.stdin, data) :]
    except OSError:
        pass  # the command closed its stdin or ended
    finally:
        process.close_stdin()
