"""The CRI streaming server's pure parts: SPDY/3.1 frames and header compression, the
remotecommand v4 status and resize messages, tokens; and one session over a socket pair."""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib

import pytest

from stage0.cri.streaming import frames as f
from stage0.cri.streaming.backend import ExecRequest
from stage0.cri.streaming.dictionary import SPDY3_DICTIONARY
from stage0.cri.streaming.remotecommand import Channels, ResizeDecoder, status
from stage0.cri.streaming.server import Tokens
from stage0.cri.streaming.session import Session, Stream


def test_dictionary_is_spdy3s() -> None:
    # the dictionary's length and Adler-32 (zlib's dictionary ID) as every SPDY/3 peer has them
    assert len(SPDY3_DICTIONARY) == 1423
    assert zlib.adler32(SPDY3_DICTIONARY) == 0xE3C6A7C2


ALL_FRAMES: list[f.Frame] = [
    f.SynStream(1, (("streamtype", "error"), ("port", "80")), associated=0, priority=3, fin=True),
    f.SynReply(3, (("x", "a\0b"),), fin=False),
    f.HeadersFrame(5, (), fin=True),
    f.Data(7, b"hello", fin=True),
    f.Data(9, b""),
    f.RstStream(11, f.CANCEL),
    f.Settings(((0, f.SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20),)),
    f.Ping(42),
    f.GoAway(13, 0),
    f.WindowUpdate(0, 4096),
]


def test_frames_round_trip_through_one_compression_context() -> None:
    encoder, decoder = f.Encoder(), f.Decoder()
    wire = b"".join(encoder.encode(frame) for frame in ALL_FRAMES * 2)
    # byte by byte: a frame split anywhere waits for its rest
    got = [frame for at in range(len(wire)) for frame in decoder.feed(wire[at : at + 1])]
    assert got == ALL_FRAMES * 2


def test_wire_layout() -> None:
    assert f.Encoder().encode(f.Data(5, b"ab", fin=True)) == b"\x00\x00\x00\x05\x01\x00\x00\x02ab"
    assert f.Encoder().encode(f.Ping(1)) == b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"
    syn = f.Encoder().encode(f.SynStream(1, (("a", "b"),), priority=7))
    assert syn[:4] == b"\x80\x03\x00\x01" and syn[8:18] == b"\x00\x00\x00\x01\x00\x00\x00\x00\xe0\x00"
    block = zlib.decompressobj(zdict=SPDY3_DICTIONARY).decompress(syn[18:])
    assert block == b"\x00\x00\x00\x01\x00\x00\x00\x01a\x00\x00\x00\x01b"


def test_large_data_is_split_and_fin_only_on_the_last_frame() -> None:
    wire = f.Encoder().encode(f.Data(1, b"x" * (f.MAX_DATA * 2 + 1), fin=True))
    frames = f.Decoder().feed(wire)
    assert [len(frame.data) for frame in frames if isinstance(frame, f.Data)] == [f.MAX_DATA, f.MAX_DATA, 1]
    assert [frame.fin for frame in frames if isinstance(frame, f.Data)] == [False, False, True]


@pytest.mark.parametrize(
    "wire",
    [
        b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01",  # SPDY/2
        b"\x80\x03\x00\x01\x00\x00\x00\x0c" + b"\x00" * 10 + b"\xff\xff",  # a block that is no zlib
        b"\x80\x03\x00\x03\x00\x00\x00\x02\x00\x00",  # RST_STREAM too short
    ],
)
def test_bad_frames_are_protocol_errors(wire: bytes) -> None:
    with pytest.raises(f.ProtocolError):
        f.Decoder().feed(wire)


def test_header_names_must_be_lowercase_and_blocks_complete() -> None:
    with pytest.raises(f.ProtocolError):
        f.decode_block(b"\x00\x00\x00\x01\x00\x00\x00\x01A\x00\x00\x00\x00")
    with pytest.raises(f.ProtocolError):
        f.decode_block(b"\x00\x00\x00\x02\x00\x00\x00\x01a\x00\x00\x00\x00")
    assert f.header((("streamtype", "data\0x"),), "StreamType") == "data"


def test_v4_status_messages() -> None:
    assert json.loads(status(0)) == {"metadata": {}, "status": "Success"}
    failure = json.loads(status(3))
    assert failure["status"] == "Failure" and failure["reason"] == "NonZeroExitCode"
    assert failure["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    internal = json.loads(status(None, "pod is not running"))
    assert internal["status"] == "Failure" and internal["message"] == "pod is not running"


def test_resize_messages_arrive_in_any_pieces() -> None:
    decoder = ResizeDecoder()
    text = b'{"Width":80,"Height":24}\n{"Width":100,"Height":40}{"Width":0,"Height":1}'
    assert decoder.feed(text[:10]) == []
    assert decoder.feed(text[10:40]) == [(80, 24)]
    assert decoder.feed(text[40:]) == [(100, 40)]  # a zero size is no size


def test_tokens_are_single_use_and_expire() -> None:
    tokens = Tokens(ttl=0.2)
    request = ExecRequest("c1", ("ls",))
    first, second = tokens.put(request), tokens.put(request)
    assert first != second
    assert tokens.take(first) == request
    assert tokens.take(first) is None
    time.sleep(0.3)
    assert tokens.take(second) is None


class Client:
    """The client's side of a session, with our own codec (what spdystream does, in short)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.encoder, self.decoder = sock, f.Encoder(), f.Decoder()
        self.next_id = 1

    def send(self, frame: f.Frame) -> None:
        self.sock.sendall(self.encoder.encode(frame))

    def open(self, kind: str) -> int:
        stream_id, self.next_id = self.next_id, self.next_id + 2
        self.send(f.SynStream(stream_id, (("streamtype", kind),)))
        return stream_id

    def frames_until(self, done: object) -> list[f.Frame]:
        got: list[f.Frame] = []
        self.sock.settimeout(10)
        while not (callable(done) and done(got)):
            data = self.sock.recv(65536)
            if not data:
                break
            got += self.decoder.feed(data)
        return got


def test_session_replies_echoes_pings_collects_channels_and_acknowledges_data() -> None:
    ours, theirs = socket.socketpair()
    channels = Channels(stdin=True, stdout=True, stderr=False, tty=True)
    session = Session(ours, channels.add)
    reader = threading.Thread(target=session.serve, daemon=True)
    reader.start()
    client = Client(theirs)
    ids = {kind: client.open(kind) for kind in ("error", "stdin", "stdout", "resize")}
    assert channels.wait(5)
    client.send(f.Ping(7))
    client.send(f.Data(ids["stdin"], b"input", fin=True))
    stdin = channels.get("stdin")
    assert stdin is not None and stdin.read_all() == b"input"
    out = channels.get("stdout")
    assert isinstance(out, Stream)
    out.write(b"output")
    channels.finish(status(0))
    got = client.frames_until(lambda got: sum(isinstance(x, f.Data) and x.fin for x in got) == 4)
    assert [x.stream_id for x in got if isinstance(x, f.SynReply)] == list(ids.values())
    assert f.Ping(7) in got
    assert f.WindowUpdate(ids["stdin"], 5) in got and f.WindowUpdate(0, 5) in got
    assert f.Data(ids["stdout"], b"output") in got
    assert f.Data(ids["error"], b'{"metadata": {}, "status": "Success"}') in got
    client.send(f.GoAway(ids["resize"]))
    reader.join(5)
    assert not reader.is_alive() and session.ended


def test_a_peer_that_keeps_windows_is_not_sent_past_them() -> None:
    ours, theirs = socket.socketpair()
    streams: list[Stream] = []
    session = Session(ours, streams.append)
    threading.Thread(target=session.serve, daemon=True).start()
    client = Client(theirs)
    client.send(f.Settings(((0, f.SETTINGS_INITIAL_WINDOW_SIZE, 10),)))
    client.open("data")
    client.frames_until(lambda got: any(isinstance(x, f.SynReply) for x in got))
    deadline = time.monotonic() + 10  # the reply may leave before the session hands the stream on
    while not streams and time.monotonic() < deadline:
        time.sleep(0.01)
    writer = threading.Thread(target=streams[0].write, args=(b"y" * 25,), daemon=True)
    writer.start()
    got = client.frames_until(lambda got: sum(len(x.data) for x in got if isinstance(x, f.Data)) >= 10)
    time.sleep(0.2)
    assert writer.is_alive()  # 15 bytes wait for the window
    client.send(f.WindowUpdate(1, 15))
    got += client.frames_until(lambda got: sum(len(x.data) for x in got if isinstance(x, f.Data)) >= 15)
    writer.join(5)
    assert b"".join(x.data for x in got if isinstance(x, f.Data)) == b"y" * 25
    session.close()
