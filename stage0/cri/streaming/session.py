"""A server's SPDY/3.1 session over one upgraded connection, with threads: the caller's thread
reads frames and hands each new stream to a callback; streams are read and written from any
thread; one lock keeps frames (and so the header compression context) in order.

Flow control: what we receive is acknowledged with WINDOW_UPDATE as the reader consumes it, and a
stream whose reader lags holds the connection's reading (as moby/spdystream does), so memory stays
bounded. What we send honours the peer's windows once the peer shows it keeps them (a
WINDOW_UPDATE or SETTINGS received): spdystream, which crictl and kubelet use, never sends one and
never limits us; waiting on a window it will never open would hang every exec past 64 KiB.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from stage0.cri.streaming import frames as f

INITIAL_WINDOW = 65536
BUFFER_LIMIT = 4 * INITIAL_WINDOW  # a stream's unread bytes before the connection's reading waits


class Stream:
    """One SPDY stream the client opened: its headers, our reading side and our writing side."""

    def __init__(self, session: Session, stream_id: int, headers: f.Headers) -> None:
        self.session, self.id, self.headers = session, stream_id, headers
        self._cond = threading.Condition()
        self._buffer = bytearray()
        self._eof = False  # the peer sent FIN or reset the stream
        self._closed = False  # we sent FIN
        self.reset = False
        self.send_window = session.initial_send_window

    @property
    def kind(self) -> str:
        return f.header(self.headers, "streamtype")

    def header(self, name: str) -> str:
        return f.header(self.headers, name)

    def read(self, size: int = 65536) -> bytes:
        """Up to ``size`` bytes; b"" once the peer finished or reset the stream."""
        with self._cond:
            while not self._buffer and not self._eof:
                self._cond.wait()
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._cond.notify_all()
        if data:
            self.session.consumed(self, len(data))
        return data

    def read_all(self, limit: int = 1 << 20) -> bytes:
        data = b""
        while chunk := self.read():
            data += chunk
            if len(data) > limit:
                break
        return data

    def write(self, data: bytes) -> None:
        """Sends ``data`` (at most as the peer's windows allow); a reset stream drops it. Raises
        OSError when the connection broke."""
        while data and not self.reset:
            size = self.session.reserve(self, len(data))
            if not size:
                return  # the session ended meanwhile
            self.session.send(f.Data(self.id, data[:size]))
            data = data[size:]

    def close(self) -> None:
        """Our half-close (FIN): we send no more on this stream; idempotent."""
        with self._cond:
            if self._closed or self.reset:
                return
            self._closed = True
        with contextlib.suppress(OSError):
            self.session.send(f.Data(self.id, b"", fin=True))

    def cancel(self) -> None:
        """Resets the stream (RST_STREAM CANCEL): both directions end."""
        if not self.reset:
            with contextlib.suppress(OSError):
                self.session.send(f.RstStream(self.id, f.CANCEL))
        self._end(reset=True)

    # the session's side

    def _feed(self, data: bytes, fin: bool) -> None:
        with self._cond:
            self._buffer += data
            self._eof = self._eof or fin
            self._cond.notify_all()
            while len(self._buffer) > BUFFER_LIMIT and not self._eof and not self.session.ended:
                self._cond.wait(1.0)

    def _end(self, *, reset: bool) -> None:
        with self._cond:
            self._eof = True
            self.reset = self.reset or reset
            self._cond.notify_all()


class Session:
    def __init__(self, sock: socket.socket, on_stream: Callable[[Stream], None]) -> None:
        self._sock = sock
        self._on_stream = on_stream
        self._send_lock = threading.Lock()
        self._encoder = f.Encoder()
        self._streams: dict[int, Stream] = {}
        self._window = threading.Condition()  # guards the send windows below
        self.initial_send_window = INITIAL_WINDOW
        self._session_window = INITIAL_WINDOW
        self._peer_flow_control = False
        self._last_stream = 0
        self.ended = False

    def send(self, frame: f.Frame) -> None:
        with self._send_lock:
            self._sock.sendall(self._encoder.encode(frame))

    def serve(self) -> None:
        """Reads frames until the peer goes away or the connection breaks; then every stream ends."""
        decoder = f.Decoder()
        try:
            while data := self._sock.recv(65536):
                for frame in decoder.feed(data):
                    if not self._dispatch(frame):
                        return
        except (OSError, f.ProtocolError) as error:
            if isinstance(error, f.ProtocolError):
                with contextlib.suppress(OSError):
                    self.send(f.GoAway(self._last_stream, 1))
        finally:
            self._finish()

    def close(self) -> None:
        """Says goodbye (GOAWAY) and shuts the connection: the reading loop ends."""
        with contextlib.suppress(OSError):
            self.send(f.GoAway(self._last_stream))
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def _finish(self) -> None:
        self.ended = True
        for stream in list(self._streams.values()):
            stream._end(reset=True)
        with self._window:
            self._window.notify_all()

    def _dispatch(self, frame: f.Frame) -> bool:
        stream: Stream | None
        if isinstance(frame, f.SynStream):
            if frame.stream_id <= self._last_stream or frame.stream_id % 2 == 0:
                self.send(f.RstStream(frame.stream_id, f.PROTOCOL_ERROR))
                return True
            self._last_stream = frame.stream_id
            stream = Stream(self, frame.stream_id, frame.headers)
            self._streams[stream.id] = stream
            self.send(f.SynReply(stream.id))  # before the handler writes anything on it
            if frame.fin:
                stream._feed(b"", True)
            self._on_stream(stream)
        elif isinstance(frame, f.Data):
            stream = self._streams.get(frame.stream_id)
            if stream is not None:
                stream._feed(frame.data, frame.fin)
        elif isinstance(frame, f.HeadersFrame):
            stream = self._streams.get(frame.stream_id)
            if stream is not None and frame.fin:
                stream._feed(b"", True)
        elif isinstance(frame, f.RstStream):
            stream = self._streams.pop(frame.stream_id, None)
            if stream is not None:
                stream._end(reset=True)
        elif isinstance(frame, f.Ping):
            if frame.ping_id % 2 == 1:  # the client's: echo it (ours would be even)
                self.send(frame)
        elif isinstance(frame, f.GoAway):
            return False
        elif isinstance(frame, f.WindowUpdate | f.Settings):
            self._flow(frame)
        return True

    # flow control

    def _flow(self, frame: f.WindowUpdate | f.Settings) -> None:
        with self._window:
            self._peer_flow_control = True
            if isinstance(frame, f.Settings):
                for _, key, value in frame.entries:
                    if key == f.SETTINGS_INITIAL_WINDOW_SIZE:
                        delta, self.initial_send_window = value - self.initial_send_window, value
                        for stream in self._streams.values():
                            stream.send_window += delta
            elif frame.stream_id == 0:
                self._session_window += frame.delta
            elif (target := self._streams.get(frame.stream_id)) is not None:
                target.send_window += frame.delta
            self._window.notify_all()

    def reserve(self, stream: Stream, wanted: int) -> int:
        """How many of ``wanted`` bytes ``stream`` may send now (waiting for a window if none)."""
        with self._window:
            if not self._peer_flow_control:
                return min(wanted, f.MAX_DATA)
            while min(stream.send_window, self._session_window) <= 0 and not (self.ended or stream.reset):
                self._window.wait()
            if self.ended or stream.reset:
                return 0
            size = min(wanted, stream.send_window, self._session_window)
            stream.send_window -= size
            self._session_window -= size
            return size

    def consumed(self, stream: Stream, size: int) -> None:
        """The reader took ``size`` bytes: the peer may send as many again."""
        if stream.reset or self.ended:
            return
        with contextlib.suppress(OSError):
            self.send(f.WindowUpdate(stream.id, size))
            self.send(f.WindowUpdate(0, size))

    def forget(self, stream: Stream) -> None:
        self._streams.pop(stream.id, None)
