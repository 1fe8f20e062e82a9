"""The kvm flavor's program runner (the one module of stage1/kvm that spawns): virtiofsd, the
machine's registration with machined (busctl) and the kernel's decompressor at install time."""

from __future__ import annotations

import os
import subprocess
import time

from stage1.abi import Error, PodSpec

SOCKET_WAIT = 10.0


def decompress(argv: tuple[str, ...], data: bytes) -> bytes:
    """What ``argv`` (a decompressor reading stdin) makes of ``data``; a trailing-garbage warning
    is no failure (the caller checks what came out)."""
    return subprocess.run(argv, input=data, capture_output=True, check=False).stdout


def start_virtiofsd(argv: list[str], socket_path: str) -> None:
    """virtiofsd; returns once its socket listens (it ends when QEMU disconnects)."""
    os.makedirs(os.path.dirname(socket_path), mode=0o700, exist_ok=True)
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + SOCKET_WAIT
    while not os.path.exists(socket_path):
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            raise Error("virtiofsd did not start", hint="see the pod unit's journal")
        time.sleep(0.01)


def register(spec: PodSpec, leader: int) -> None:
    """machined's ``vm`` machine, ``leader`` its leader (QEMU, the unit's main process's child)."""
    uuid = bytes.fromhex(spec.uuid.replace("-", ""))
    argv = ["busctl", "call", "org.freedesktop.machine1", "/org/freedesktop/machine1",
            "org.freedesktop.machine1.Manager", "RegisterMachine", "sayssus", spec.machine,
            str(len(uuid)), *(str(b) for b in uuid), "nspod", "vm", str(leader), "/"]  # fmt: skip
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Error(f"cannot register machine {spec.machine}: {done.stderr.strip()}")
