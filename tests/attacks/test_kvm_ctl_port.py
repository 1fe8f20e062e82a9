"""Issue #25, kvm flavor: the host reads a kvm pod's exit code from the control port, a file QEMU
appends whatever the guest writes to (stage1/kvm/vm.py pod_code). The guest's kernel is the
boundary a kvm pod adds, so what the guest writes there is an attacker's bytes: a root in the guest
(an app that got past the guest's kernel) writes what it likes. The host's reader must neither
crash nor report a code no process can exit with: bytes that are no UTF-8, digits that are no ASCII
digits (``'²'.isdigit()``), numbers past 255, NULs, long lines, a file of many MiB. Each shape
is written as the guest would and read by the host's own code."""

from __future__ import annotations

from pathlib import Path

import pytest

from stage1.abi import AppSpec, PodPaths, PodSpec
from stage1.kvm import vm
from stage1.kvm.vm import pod_code

SPEC = PodSpec(
    uuid="0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0",
    machine="web",
    hostname="web",
    apps=(AppSpec(name="server", rootfs="/l/s", exec=("/bin/server",)),),
)

# what the guest wrote → the code the host must report (the app's recorded status is 7)
SHAPES: dict[str, tuple[bytes, int]] = {
    "honest": (b"exit 3\n", 3),
    "not-utf8": (b"exit 3\n\xff\xfe\x80garbage\n", 3),
    "not-utf8-alone": (b"\xff" * 100, 7),
    "superscript-digit": ("exit \u00b2\n".encode(), 7),
    "arabic-indic-digit": ("exit \u0663\n".encode(), 7),
    "past-255": (b"exit 256\n", 7),
    "huge-number": (b"exit " + b"9" * 5000 + b"\n", 7),
    "nul-inside": (b"exit 0\x00\n", 7),
    "long-line": (b"x" * (1 << 20) + b"\nexit 5\n", 5),
}


def _pod(tmp_path: Path, written: bytes, status: bytes = b"7\n") -> PodPaths:
    paths = PodPaths(str(tmp_path))
    Path(paths.status).mkdir(parents=True, exist_ok=True)
    Path(paths.status, "server").write_bytes(status)
    Path(vm.ctl_path(paths)).write_bytes(written)
    return paths


@pytest.mark.parametrize("shape", SHAPES)
def test_the_hosts_reader_takes_no_guest_bytes_for_a_code(tmp_path: Path, shape: str) -> None:
    written, code = SHAPES[shape]
    assert pod_code(_pod(tmp_path, written), SPEC) == code


def test_a_flood_on_the_port_is_read_in_bounded_memory(tmp_path: Path) -> None:
    # a guest writing without end: the host reads the tail, where the last report is
    flood = b"y" * 4096 + b"\n"
    paths = _pod(tmp_path, b"")
    with open(vm.ctl_path(paths), "wb") as file:
        for _ in range(16 * 256):  # 16 MiB
            file.write(flood)
        file.write(b"exit 4\n")
    import tracemalloc

    tracemalloc.start()
    try:
        assert pod_code(paths, SPEC) == 4
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


# an app's status file, read when the guest said nothing (a VM killed before its end): also the
# guest's bytes
STATUSES: dict[str, tuple[bytes, int]] = {
    "honest": (b"7\n", 7),
    "negative": (b"-5\n", 0),
    "past-255": (b"300\n", 0),
    "superscript": ("\u00b2".encode(), 0),
    "not-utf8": (b"\xff\xfe", 0),
    "huge": (b"9" * (8 << 20), 0),
}


@pytest.mark.parametrize("shape", STATUSES)
def test_an_apps_status_file_is_read_as_the_guests_bytes(tmp_path: Path, shape: str) -> None:
    written, code = STATUSES[shape]
    assert pod_code(_pod(tmp_path, b"", status=written), SPEC) == code
