"""pod@NAME.service as a new user meets it (issue #23 items 7, 9, 10): a pod file with a port, the
pod's output through ``nspod logs``, limits that leave the unit when they leave the pod file."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.test_network import web_image
from tests.integration.test_pod_units import Host, host, image, prop  # noqa: F401 (fixtures)
from tests.integration.test_pods import sh

pytestmark = pytest.mark.systemd


def start(unit: str) -> None:
    started = subprocess.run(["systemctl", "start", unit], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr + sh("journalctl", "-u", unit, "--no-pager")


def fetch(address: str, port: int) -> bytes:
    """An HTTP GET of / on address:port, the answer's bytes ('' when nothing answers in 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            with socket.socket(family) as sock:
                sock.settimeout(5)
                sock.connect((address, port))
                sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
                return b"".join(iter(lambda: sock.recv(65536), b""))
        except OSError:
            if time.monotonic() > deadline:
                return b""
            time.sleep(0.2)


def test_a_pod_file_with_a_port_answers_on_both_loopbacks(host: Host, tmp_path: Path) -> None:  # noqa: F811
    # item 7: the ::1 proxy's unit was named pod@web-port6-http.service, refused by nspod's own check
    web = web_image(tmp_path / "web")
    host.pod_file("web", f'port = ["http:18095"]\n\n[[app]]\nimage = "{web}"\n')
    start("pod@web.service")
    try:
        for address in ("127.0.0.1", "::1"):
            assert b"hello-from-pod" in fetch(address, 18095), address
        assert "warning" not in sh("journalctl", "-u", "pod@web", "-o", "cat", "--no-pager")
    finally:
        subprocess.run(["systemctl", "stop", "pod@web"], check=False)


def test_logs_of_a_pod_at_unit_show_its_apps_output(host: Host, image: Path) -> None:  # noqa: F811
    # item 9: 'logs' followed POD_UUID=, which only a transient pod's unit adds
    shell = "echo talk-run-$(cat /proc/sys/kernel/random/uuid); sleep 300"
    host.pod_file("talk", f'[[app]]\nimage = "{image}"\nexec = "/bin/sh"\nargs = ["-c", "{shell}"]\n')
    runs = []
    for _ in range(2):  # a second run: its own lines alone, though the unit is the same
        start("pod@talk.service")
        deadline = time.monotonic() + 15
        while True:
            shown = host.nspod("logs", "talk")
            lines = [line for line in shown.stdout.splitlines() if "talk-run-" in line]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert shown.returncode == 0, shown.stderr
        assert len(lines) == 1 and lines[0].startswith("bb: talk-run-"), shown.stdout
        runs.append(lines[0])
        subprocess.run(["systemctl", "stop", "pod@talk"], check=False)
    assert runs[0] != runs[1], runs
    assert "talk" in sh("journalctl", "POD_NAME=talk", "-o", "cat", "--no-pager")


def limits(unit: str) -> tuple[str, str]:
    """The unit's MemoryMax as systemd shows it and as its cgroup holds it (v1 or v2)."""
    group = prop(unit, "ControlGroup")
    for path in (f"/sys/fs/cgroup/memory{group}/memory.limit_in_bytes", f"/sys/fs/cgroup{group}/memory.max"):
        if Path(path).exists():
            return prop(unit, "MemoryMax"), Path(path).read_text().strip()
    raise AssertionError(f"no memory cgroup for {unit} ({group})")


def test_a_limit_removed_from_the_pod_file_leaves_the_unit(host: Host, image: Path) -> None:  # noqa: F811
    # item 10: the runtime drop-in set-property wrote survived restarts
    app = f'[[app]]\nimage = "{image}"\nexec = "/bin/sleep"\nargs = ["300"]\n'
    host.pod_file("lim", app + 'memory = "64M"\n')
    start("pod@lim.service")
    try:
        assert limits("pod@lim.service") == ("64000000", "64000000")
        host.pod_file("lim", app)
        restarted = subprocess.run(["systemctl", "restart", "pod@lim"], capture_output=True, text=True)
        assert restarted.returncode == 0, restarted.stderr
        shown, cgroup = limits("pod@lim.service")
        assert shown == "infinity" and cgroup in ("max", "9223372036854771712"), (shown, cgroup)
        host.pod_file("lim", app + 'memory = "128M"\n')  # and back: the limit is there again
        assert subprocess.run(["systemctl", "restart", "pod@lim"]).returncode == 0
        assert limits("pod@lim.service") == ("128000000", "128000000")
    finally:
        subprocess.run(["systemctl", "stop", "pod@lim"], check=False)
