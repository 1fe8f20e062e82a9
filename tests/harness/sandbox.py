"""A private mount + network namespace with its own /etc/hosts, for tests that resolve names.

Inside it only ``lo`` exists and ``/etc/hosts`` maps the test names to 127.0.0.1, so a name a test
forgets to map fails locally and no lookup or packet can leave the machine. The namespaces are
held by a ``sleep`` we start (and kill, by PID); commands join them with ``nsenter``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

HOSTS = "127.0.0.1 localhost\n::1 localhost\n"


class Sandbox:
    def __init__(self, directory: Path, names: Sequence[str]) -> None:
        self.dir = directory
        hosts = directory / "hosts"
        hosts.write_text(HOSTS + "".join(f"127.0.0.1 {name}\n" for name in names))
        script = f"ip link set lo up && mount --bind {hosts} /etc/hosts && exec sleep infinity"
        self._holder = subprocess.Popen(
            ["unshare", "--mount", "--net", "--propagation", "private", "--", "sh", "-c", script]
        )
        self.pid = self._holder.pid
        deadline = time.monotonic() + 10
        while not self._ready():
            if self._holder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the test sandbox did not start")
            time.sleep(0.01)
        self._children: list[subprocess.Popen[bytes]] = []

    def _ready(self) -> bool:
        try:
            comm = Path(f"/proc/{self.pid}/comm").read_text().strip()
            mine = os.readlink(f"/proc/{self.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        except OSError:
            return False
        return comm == "sleep" and mine

    def argv(self, *cmd: str) -> list[str]:
        # --root: the sleeper's root (/ on a machine, the root of a fresh-check chroot)
        return ["nsenter", "-t", str(self.pid), "--root", "-m", "-n", "--", *cmd]

    def run(
        self, *cmd: str, env: Mapping[str, str] | None = None, timeout: float = 300, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*cmd),
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            input=stdin,
            check=False,
        )

    def popen(
        self, *cmd: str, env: Mapping[str, str] | None = None, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(self.argv(*cmd), env=env, **kwargs)  # type: ignore[call-overload]
        self._children.append(child)
        return child  # type: ignore[no-any-return]

    def close(self) -> None:
        for child in self._children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self._children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._holder.kill()
        self._holder.wait()
