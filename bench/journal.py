#!/usr/bin/env python3
"""bench/journal: reading a pod's lines from the journal, nspod's sd-journal reader (ctypes on
libsystemd, stage1/journal.py) against the systemd project's own binding (python3-systemd's
``systemd.journal.Reader``), on the same entries, interleaved.

    make bench-journal          (in a test host when PID 1 is not systemd)

Issue #10 asks to use the project's binding unless ours has a measured reason; this is the
measurement. Both run in Debian's /usr/bin/python3 (the binding is a Debian package for it;
PyPI has only its source, which needs a compiler and libsystemd-dev to install into a venv).
"""

from __future__ import annotations

import io
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage1.journal import Follower, send

ENTRIES = 20000
ROUNDS = 5


class Sink(io.BytesIO):
    def isatty(self) -> bool:
        return False


def ours(tag: str) -> int:
    out = Sink()
    Follower("POD_UUID", tag, out=out, err=out).finish(None)
    return out.getvalue().count(b"\n")


def theirs(tag: str) -> int:
    from systemd import journal  # type: ignore[import-not-found]

    reader = journal.Reader(flags=journal.LOCAL_ONLY)
    reader.add_match(POD_UUID=tag)
    return sum(1 for entry in reader if entry["MESSAGE"] is not None)


def main() -> int:
    tag = uuid.uuid4().hex
    for i in range(ENTRIES):
        send({"MESSAGE": f"line {i}".encode(), "POD_UUID": tag.encode(), "SYSLOG_IDENTIFIER": b"bench"})
    time.sleep(2)  # journald writes them
    times: dict[str, list[float]] = {"nspod (ctypes)": [], "python3-systemd": []}
    for _ in range(ROUNDS):
        for name, read in (("nspod (ctypes)", ours), ("python3-systemd", theirs)):
            start = time.perf_counter()
            count = read(tag)
            times[name].append((time.perf_counter() - start) * 1000)
            assert count == ENTRIES, (name, count)
    for name, values in times.items():
        print(f"  {name:18} median {statistics.median(values):6.1f} ms for {ENTRIES} entries")
    ratio = statistics.median(times["python3-systemd"]) / statistics.median(times["nspod (ctypes)"])
    print(f"nspod's reader is {ratio:.2f}x as fast as python3-systemd's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
