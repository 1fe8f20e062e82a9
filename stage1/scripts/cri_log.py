#!/usr/bin/python3
# cri-log APP PATH|- [--stdin-once] [--tty]: the log writer of app APP, a container of `nspod cri`
# (runs in the pod, as cri-log-APP.service). The app's stdout and stderr are FIFOs, as under
# containerd: /run/nspod/crilog/APP.out and .err, which the pod's systemd made and holds open
# (cri-log-APP.socket, ListenFIFO=) and hands to this writer. Since PID 1 holds them, a writer that
# dies (even of SIGKILL) loses nothing the app writes meanwhile and gives it no SIGPIPE: systemd
# starts it again (Restart=always, or the FIFO's data triggers the socket) and it reads on.
# Every line goes to PATH in the format kubelet reads, "<RFC3339Nano> stdout|stderr F|P <text>"
# (P: a part of a line longer than MAX_LINE, or its last part before the end without a newline is
# F, as containerd writes), and to the pod's journal as the app's, and through the pod's console
# the host's (so `nspod logs` and `journalctl -M` keep showing it).
# Kubelet rotates the file by renaming it and asking for a new one (ReopenContainerLog, which
# creates it): the writer writes on to the file it has open until a file at PATH is another one.
# Attach (stage0/cri/attach.py) connects to APP.attach: it gets a copy of the output, and what it
# sends goes to the app's stdin (APP.in, a socket the app's stdin is connected to; its connection
# is kept in systemd's fd store across restarts); with --stdin-once the app's stdin ends when the
# first attach that brought stdin ends. With --tty the app's terminal is a pty whose master this
# writer holds (in the fd store too): APP.tty links to its other end, the app's TTYPath=.
# The writer never sees an end of the FIFOs (PID 1 holds them): once the app has ended, its reaper
# writes "drain ID" to APP.ctl (a FIFO too); the writer drains the output FIFOs and writes "ID" to
# APP.ack, and only then is the exit recorded: the file is whole once the app is "exited".
# Only the standard library: it runs with the host's /usr/bin/python3, which every pod sees.
from __future__ import annotations

import array
import contextlib
import fcntl
import os
import select
import signal
import socket
import stat
import struct
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # its sibling, in the pod too (-I)
from unit_exit import answers  # type: ignore[import-not-found]  # checked as stage1.scripts.unit_exit

SOCKETS = "/run/nspod/crilog"
MAX_LINE = 16 * 1024  # containerd's max_container_log_line_size
CHUNK = 65536  # a FIFO's whole default capacity: lines written at once are read at once
JOURNAL = "/run/systemd/journal/stdout"
# attach frames (stage0/cri/attach.py): a kind, the payload's length, the payload
FRAME = struct.Struct(">cI")
HELLO, STDIN, STDOUT, STDERR, RESIZE = b"h", b"0", b"1", b"2", b"r"
OUTPUT = {"stdout": STDOUT, "stderr": STDERR}


def timestamp(ns: int) -> str:
    """Go's RFC3339Nano in UTC: nanoseconds with the trailing zeros dropped."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def record(ns: int, stream: str, tag: str, text: bytes) -> bytes:
    return f"{timestamp(ns)} {stream} {tag} ".encode() + text + b"\n"


class Splitter:
    """A stream's bytes as log records (tag, text): whole lines, and parts of long ones."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self.pending = b""

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self.pending += data
        out: list[tuple[str, bytes]] = []
        while True:
            end = self.pending.find(b"\n", 0, self.limit + 1)
            if end >= 0:
                line, self.pending = self.pending[:end], self.pending[end + 1 :]
                out.append(("F", line[:-1] if line.endswith(b"\r") else line))
            elif len(self.pending) >= self.limit:
                out.append(("P", self.pending[: self.limit]))
                self.pending = self.pending[self.limit :]
            else:
                return out

    def end(self) -> list[tuple[str, bytes]]:
        """The stream ended: what is left is a last line without its newline."""
        rest, self.pending = self.pending, b""
        return [("F", rest)] if rest else []


class Frames:
    """Attach frames out of a byte stream, as they complete."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self.pending += data
        out = []
        while len(self.pending) >= FRAME.size:
            kind, size = FRAME.unpack_from(self.pending)
            if len(self.pending) < FRAME.size + size:
                break
            out.append((kind, self.pending[FRAME.size : FRAME.size + size]))
            self.pending = self.pending[FRAME.size + size :]
        return out


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return FRAME.pack(kind, len(payload)) + payload


def journal_header(app: str) -> bytes:
    """What systemd says first on an app's stdout stream to journald: the app's name, no unit,
    priority info, no level prefixes, forwarded to the console (the pod's console is where the
    host's journal, and so `nspod logs`, takes an app's lines from)."""
    return f"{app}\n\n6\n0\n0\n0\n1\n".encode()


def journal_stream(app: str, path: str) -> socket.socket | None:
    """A stream to journald in the app's name, as systemd opens one for StandardOutput=journal+console."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        sock.sendall(journal_header(app))
        return sock
    except OSError:
        sock.close()
        return None


class LogFile:
    """PATH, opened for appending; moves to a new file at PATH once one replaced the old."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1
        if path != "-":  # none: the journal and attach only
            self.open()

    def open(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as error:
            print(f"cri-log: cannot open {self.path}: {error.strerror}", file=sys.stderr)
            return
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = fd

    def write(self, data: bytes) -> None:
        if self.path == "-":
            return
        try:
            now, current = os.stat(self.path), os.fstat(self.fd) if self.fd >= 0 else None
            if current is None or (now.st_dev, now.st_ino) != (current.st_dev, current.st_ino):
                self.open()
        except FileNotFoundError:
            pass  # renamed away, not reopened yet: the old file takes the lines meanwhile (kubelet's rule)
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self.fd, data)


def notify(message: bytes, fds: tuple[int, ...] = ()) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendmsg([message], rights, 0, address)


def role(fd: int) -> str:
    """What a passed descriptor is, by the suffix of its path: out, err (FIFOs), attach, in."""
    if stat.S_ISFIFO(os.fstat(fd).st_mode):
        where = os.readlink(f"/proc/self/fd/{fd}")
    else:
        with socket.socket(fileno=os.dup(fd)) as sock:
            where = sock.getsockname()
    return str(where).rpartition(".")[2]


def passed(environ: dict[str, str] | os._Environ[str]) -> dict[str, int]:
    """The descriptors systemd passed (sd_listen_fds), by role; stored ones by their name."""
    if environ.get("LISTEN_PID") != str(os.getpid()):
        return {}
    names = environ.get("LISTEN_FDNAMES", "").split(":")
    found = {}
    for index in range(int(environ.get("LISTEN_FDS", "0"))):
        fd, name = 3 + index, names[index] if index < len(names) else ""
        os.set_inheritable(fd, False)
        found[name if name in ("stdin", "tty") else role(fd)] = fd
    return found


class Writer:
    def __init__(self, app: str, path: str, fds: dict[str, int], *, once: bool, tty: bool,
                 sockets: str = SOCKETS, journal_socket: str = JOURNAL) -> None:  # fmt: skip
        self.app, self.once = app, once
        self.log = LogFile(path)
        self.journal = journal_stream(app, journal_socket)
        self.outputs: dict[int, tuple[str, Splitter]] = {}
        for name, stream in (("out", "stdout"), ("err", "stderr")):
            if name in fds:
                os.set_blocking(fds[name], False)
                self.outputs[fds[name]] = (stream, Splitter())
        self.tty, self.slave = fds.get("tty", -1), -1
        link = os.path.join(sockets, app + ".tty")
        if tty and self.tty < 0:
            self.tty = self.make_tty(link)
        elif self.tty >= 0:  # a restart: the slave is held again, so the master never reads EIO
            with contextlib.suppress(OSError):
                self.slave = os.open(link, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        if self.tty >= 0:
            os.set_blocking(self.tty, False)
            self.outputs[self.tty] = ("stdout", Splitter())
        self.listeners = {n: socket.socket(fileno=fds[n]) for n in ("attach", "in") if n in fds}
        self.clients: dict[socket.socket, tuple[Frames, list[bool]]] = {}
        self.stdin = socket.socket(fileno=fds["stdin"]) if "stdin" in fds else None
        self.stdin_buffer, self.stdin_ending, self.stdin_done = b"", False, False
        self.wake = -1  # readable once a signal came (signal.set_wakeup_fd)
        self.ctl, self.ack = fds.get("ctl", -1), fds.get("ack", -1)  # non-blocking, as systemd opens FIFOs

    def make_tty(self, link: str) -> int:
        master, slave = os.openpty()  # the slave stays open here: the master never reads EIO
        self.slave = slave
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        os.symlink(os.ttyname(slave), link)
        notify(b"FDSTORE=1\nFDNAME=tty", (master,))
        return master

    def serve(self, stopping: list[float]) -> None:
        while not stopping:
            watched: list[socket.socket | int] = [*self.outputs, *self.listeners.values(), *self.clients]
            watched += [fd for fd in (self.wake, self.ctl) if fd >= 0]
            writable = [self.stdin] if self.stdin is not None and self.stdin_buffer else []
            try:
                ready, ready_out, _ = select.select(watched, writable, [], 0.5)
            except InterruptedError:
                continue
            for item in ready:
                if item == self.wake:
                    with contextlib.suppress(OSError):
                        os.read(self.wake, 64)
                elif item == self.ctl:
                    self.answer()
                elif isinstance(item, int):
                    self.read(item)
                elif item in self.clients:
                    self.from_client(item)
                else:
                    self.accept(item)
            if ready_out:
                self.feed_stdin()
        self.drain()  # stopped: the app has ended

    def drain(self) -> None:  # everything the app wrote, a last line without its newline too
        for fd in list(self.outputs):
            while self.read(fd):
                pass
            self.emit(self.outputs[fd][0], self.outputs[fd][1].end())

    def answer(self) -> None:  # the reapers' "drain ID" (the app ended): drained, then answered
        with contextlib.suppress(OSError):  # EAGAIN: nothing there after all
            asked = os.read(self.ctl, 4096).split()[1::2]
            self.drain()
            os.write(self.ack, answers(asked, self.app))
        for client in list(self.clients):  # attach ends with the app
            self.drop(client)

    def read(self, fd: int) -> bool:
        try:
            data = os.read(fd, CHUNK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # a pty whose app is gone (EIO)
            return False
        stream, splitter = self.outputs[fd]
        self.emit(stream, splitter.feed(data))
        for client in list(self.clients):
            try:
                client.sendall(frame(OUTPUT[stream], data))
            except OSError:  # a client that does not keep up or went away is dropped
                self.drop(client)
        return bool(data)

    def emit(self, stream: str, records: list[tuple[str, bytes]]) -> None:
        if not records:
            return
        ns = time.time_ns()
        self.log.write(b"".join(record(ns, stream, tag, text) for tag, text in records))
        if self.journal is not None:
            try:
                self.journal.sendall(b"".join(text + b"\n" for _, text in records))
            except OSError:
                self.journal = None

    def accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        if listener is self.listeners.get("attach"):
            conn.settimeout(5)
            self.clients[conn] = (Frames(), [False])
            return
        if self.stdin is not None:  # a new exec of the app (its stdin connects anew)
            self.stdin.close()
        self.stdin, self.stdin_buffer, self.stdin_ending = conn, b"", False
        conn.setblocking(False)
        notify(b"FDSTORE=1\nFDNAME=stdin", (conn.fileno(),))

    def from_client(self, client: socket.socket) -> None:
        try:
            data = client.recv(CHUNK)
        except OSError:
            data = b""
        if not data:
            self.drop(client)
            return
        frames, brought_stdin = self.clients[client]
        for kind, payload in frames.feed(data):
            if kind == HELLO:
                brought_stdin[0] = b"i" in payload
            elif kind == STDIN and payload:
                if self.tty >= 0:
                    with contextlib.suppress(OSError):
                        os.write(self.tty, payload)
                elif not self.stdin_done:
                    self.stdin_buffer += payload
            elif kind == STDIN:
                self.session_ended(brought_stdin)
            elif kind == RESIZE and self.tty >= 0:
                columns, rows = (int(n) for n in payload.split())
                with contextlib.suppress(OSError):
                    fcntl.ioctl(self.tty, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        if self.stdin_buffer:
            self.feed_stdin()

    def drop(self, client: socket.socket) -> None:
        if client in self.clients:
            self.session_ended(self.clients.pop(client)[1])
            client.close()

    def session_ended(self, brought_stdin: list[bool]) -> None:
        """--stdin-once: the first attach that brought stdin ends the app's stdin as it ends."""
        if self.once and brought_stdin[0] and not self.stdin_done:
            self.stdin_ending = self.stdin_done = True
            self.feed_stdin()
        brought_stdin[0] = False

    def feed_stdin(self) -> None:
        if self.stdin is None:
            return
        try:
            sent = self.stdin.send(self.stdin_buffer) if self.stdin_buffer else 0
            self.stdin_buffer = self.stdin_buffer[sent:]
        except BlockingIOError:
            return
        except OSError:  # the app no longer reads its stdin
            self.stdin_buffer = b""
        if self.stdin_ending and not self.stdin_buffer:
            with contextlib.suppress(OSError):
                self.stdin.shutdown(socket.SHUT_WR)
            notify(b"FDSTOREREMOVE=1\nFDNAME=stdin")
            self.stdin_ending = False

    def close(self) -> None:
        for client in list(self.clients):  # attach ends with the app
            client.close()
        if self.journal is not None:
            self.journal.close()
        if self.log.fd >= 0:
            os.close(self.log.fd)


def main(argv: list[str], fds: dict[str, int] | None = None, stopping: list[float] | None = None,
         **where: str) -> int:  # fmt: skip
    """``fds`` and ``stopping`` (set to stop): the tests', which run it in a thread."""
    app, path, flags = argv[0], argv[1], argv[2:]
    given = passed(os.environ) if fds is None else fds
    writer = Writer(app, path, given, once="--stdin-once" in flags, tty="--tty" in flags, **where)
    if stopping is None:
        stopping = []
        wake, writer.wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)[::-1]
        signal.set_wakeup_fd(wake)
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(time.monotonic()))
    notify(b"READY=1")
    try:
        writer.serve(stopping)
    finally:
        writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
