"""``nspod cri`` against a real systemd, driven by crictl (cri-tools 1.26.1) as kubelet would:
the service started by its socket unit, sandboxes booted as machines, containers as their apps,
and nothing left behind once they are removed; a service killed with -9 finds its sandboxes again."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import STRICT
from tests.harness.registry import Layout, Registry, free_port

pytestmark = pytest.mark.systemd
REPO = Path(__file__).resolve().parents[2]
CRICTL = Path(os.environ.get("NSPOD_CRI_TOOLS", "/var/cache/nspod-tests/cri")) / "crictl"
SOCKET = "/run/nspod/cri.sock"
UNITS = Path("/run/systemd/system")


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60).stdout


@dataclass
class Cri:
    data: Path
    image: str
    work: Path

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        done = subprocess.run(
            [str(CRICTL), "--runtime-endpoint", f"unix://{SOCKET}", "--image-endpoint", f"unix://{SOCKET}",
             "--timeout", f"{int(timeout)}s", *args],
            capture_output=True, text=True, timeout=timeout + 10,
        )  # fmt: skip
        if check:
            assert done.returncode == 0, f"crictl {' '.join(args)}: {done.stderr}"
        return done.stdout if check else done.stdout + done.stderr

    def write(self, name: str, value: object) -> str:
        path = self.work / name
        path.write_text(json.dumps(value))
        return str(path)

    def sandbox_config(self, name: str, attempt: int = 0, port: int = 0) -> str:
        ports = [{"protocol": 0, "container_port": 8080, "host_port": port}] if port else []
        return self.write(f"pod-{name}-{attempt}.json", {
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "attempt": attempt},
            "port_mappings": ports,
            "hostname": name, "log_directory": str(self.work / "logs" / name), "labels": {"test": "cri"},
            "dns_config": {"servers": ["10.0.0.53"], "searches": ["example.test"], "options": ["ndots:2"]},
        })  # fmt: skip

    def container_config(self, name: str, script: str) -> str:
        return self.write(f"ctr-{name}.json", {
            "metadata": {"name": name}, "image": {"image": self.image},
            "command": ["/bin/sh", "-c"], "args": [script], "envs": [{"key": "GREETING", "value": "hi"}],
            "log_path": f"{name}.log", "labels": {"role": name},
        })  # fmt: skip

    def nspod(self, *args: str) -> str:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        argv = [sys.executable, "-m", "stage0", "--dir", str(self.data), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env).stdout

    def service(self, action: str) -> None:
        subprocess.run(
            ["systemctl", action, "nspod-cri.socket", "nspod-cri.service"], check=False, timeout=60
        )


def _install_units(data: Path) -> None:
    """The repository's units, the service running this checkout on the test's data dir."""
    UNITS.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "units/nspod-cri.socket", UNITS / "nspod-cri.socket")
    service = (REPO / "units/nspod-cri.service").read_text()
    service = service.replace(
        "ExecStart=/usr/local/bin/nspod cri",
        f"ExecStart={sys.executable} -m stage0 --dir {data} cri\nEnvironment=PYTHONPATH={REPO}",
    )
    (UNITS / "nspod-cri.service").write_text(service)
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    subprocess.run(["systemctl", "start", "nspod-cri.socket"], check=True)


@pytest.fixture(scope="module")
def cri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cri]:
    BASELINE.update(_host_state())
    if not CRICTL.exists():
        if STRICT:
            pytest.fail(f"{CRICTL} is missing: bash /work/shared/cri/build-cri-tools.sh {CRICTL.parent}")
        pytest.skip("crictl is not built")
    base = tmp_path_factory.mktemp("cri")
    registry = Registry.start(base / "registry")
    try:
        layout = Layout(base / "layout")
        layout.busybox(
            "busybox", applets=("sh", "echo", "cat", "ls", "id", "true", "sleep", "hostname", "nc")
        )
        layout.config("busybox", "--config.cmd", "/bin/sh", "--config.env", "PATH=/bin")
        layout.push("busybox", f"{registry.host}/busybox:latest")
        data = base / "data"
        image = f"{registry.host}/busybox:latest"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        fetched = subprocess.run(
            [sys.executable, "-m", "stage0", "--dir", str(data), "--insecure-options=image,http", "fetch",
             f"docker://{image}"], capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr
        _install_units(data)
        work = base / "work"
        (work / "logs").mkdir(parents=True)
        yield Cri(data, image, work)
    finally:
        subprocess.run(["systemctl", "stop", "nspod-cri.socket", "nspod-cri.service"], check=False)
        registry.stop()


def _host_state() -> dict[str, set[str]]:
    """What a pod leaves on the host if it leaves anything: machines, nspod's units, network
    namespaces, veths, pod mounts (as sets of lines, to compare with the module's start)."""
    units = sh("systemctl", "list-units", "--all", "--no-legend", "--plain", "nspod-*.service")
    return {
        "machines": set(sh("machinectl", "list", "--no-legend").splitlines()),
        "units": {u.split()[0] for u in units.splitlines() if u and not u.startswith("nspod-cri")},
        "netns": set(sh("ip", "netns", "list").splitlines()),
        "veths": {
            line.split(":")[1].strip() for line in sh("ip", "-o", "link").splitlines() if "veth" in line
        },
        "mounts": {
            line for line in Path("/proc/self/mountinfo").read_text().splitlines() if "nspod/pods" in line
        },
    }


# what the session's earlier tests left for their own data dirs (the metadata service they
# activated, say) is not this module's to answer for
BASELINE: dict[str, set[str]] = {}


def _nothing_left() -> None:
    now = _host_state()
    added = {what: sorted(now[what] - BASELINE.get(what, set())) for what in now}
    assert not any(added.values()), added


def _read_port(port: int, timeout: float = 20) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                data = conn.recv(100)
                if data:
                    return data
        except OSError:
            pass
        assert time.monotonic() < deadline, f"nothing answers on port {port}"
        time.sleep(0.2)


def wait_for(what: object, check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_kubelet_day(cri: Cri) -> None:
    port = free_port()
    pod = cri("runp", cri.sandbox_config("day", port=port)).strip()
    assert len(pod) == 36
    status = json.loads(cri("inspectp", pod))
    assert status["status"]["state"] == "SANDBOX_READY"
    assert status["status"]["metadata"]["name"] == "day"
    assert status["status"]["network"]["ip"]
    assert sh("machinectl", "show", f"nspod-{pod}", "-p", "State", "--value").strip() == "running"
    assert pod in cri.nspod("list", "--full")  # native to the host: nspod's own verbs see it

    script = 'echo "$GREETING from $(hostname)"; cat /etc/resolv.conf; exit 3'
    ctr = cri("create", pod, cri.container_config("day", script), cri.sandbox_config("day")).strip()
    assert json.loads(cri("inspect", ctr))["status"]["state"] == "CONTAINER_CREATED"
    started = cri("start", ctr, check=False)
    assert "Failed" not in started, started + sh("journalctl", "-u", "nspod-cri", "--no-pager")
    wait_for("exit", lambda: json.loads(cri("inspect", ctr))["status"]["state"] == "CONTAINER_EXITED")
    status = json.loads(cri("inspect", ctr))["status"]
    assert status["exitCode"] == 3 and status["reason"] == "Error"
    assert status["startedAt"] > "2000" and status["finishedAt"] >= status["startedAt"]  # RFC 3339
    listed = json.loads(cri("ps", "-a", "-o", "json", "--label", "role=day"))["containers"]
    assert [c["id"] for c in listed] == [ctr]
    assert json.loads(cri("ps", "-o", "json"))["containers"] == []  # running only: none

    serve = "while true; do echo hello-port | nc -l -p 8080; done"
    web = cri("create", pod, cri.container_config("web", serve), cri.sandbox_config("day"))
    cri("start", web.strip())
    assert _read_port(port) == b"hello-port\n"  # the sandbox's port mapping, by number
    assert cri("exec", "-s", web.strip(), "/bin/sh", "-c", "echo $GREETING-exec").strip() == "hi-exec"
    assert "hi from day" in cri.nspod("logs", pod)  # the journal has it too
    logged = cri("logs", ctr)
    assert "hi from day" in logged and "nameserver 10.0.0.53" in logged and "search example.test" in logged

    cri("stop", ctr)
    cri("rm", ctr)
    cri("stop", "--timeout", "0", web.strip())  # nc ignores nothing, but the shell loop would go on
    cri("rm", web.strip())
    assert json.loads(cri("ps", "-a", "-o", "json"))["containers"] == []
    cri("stopp", pod)
    assert json.loads(cri("inspectp", pod))["status"]["state"] == "SANDBOX_NOTREADY"
    cri("rmp", pod)
    assert json.loads(cri("pods", "-o", "json"))["items"] == []
    _nothing_left()


def test_bad_requests_answer_with_their_codes(cri: Cri) -> None:
    missing = cri("inspectp", "0" * 36, check=False)
    assert "NotFound" in missing and "Traceback" not in missing
    assert "NotFound" in cri("inspect", "f" * 64, check=False)
    pod = cri("runp", cri.sandbox_config("bad")).strip()
    try:
        broken = cri.write(
            "ctr-broken.json", {"metadata": {"name": "broken"}, "image": {"image": "nowhere/none:1"}}
        )
        answer = cri("create", pod, broken, cri.sandbox_config("bad"), check=False)
        assert "code = " in answer and "Unknown" not in answer and "Traceback" not in answer, answer
        assert json.loads(cri("ps", "-a", "-o", "json"))["containers"] == []
        assert "/opt/stage2/broken" not in Path("/proc/self/mountinfo").read_text()
    finally:
        cri("stopp", pod)
        cri("rmp", pod)
    _nothing_left()


def _make(cri: Cri, name: str) -> str:
    pod = cri("runp", cri.sandbox_config(name)).strip()
    for index in range(2):
        config = cri.container_config(f"{name}-{index}", "sleep 3600")
        cri("start", cri("create", pod, config, cri.sandbox_config(name)).strip())
    return pod


def _states(cri: Cri) -> tuple[dict[str, str], dict[str, str]]:
    pods = {p["id"]: p["state"] for p in json.loads(cri("pods", "-o", "json"))["items"]}
    ctrs = {c["id"]: c["state"] for c in json.loads(cri("ps", "-a", "-o", "json"))["containers"]}
    return pods, ctrs


def test_many_sandboxes_rounds_and_a_killed_service(cri: Cri) -> None:
    """20 sandboxes of 2 containers, made and torn down 4 at a time, 5 rounds; in the third the
    service is killed with -9 while they run: restarted by its socket, it lists each as it is."""
    from concurrent.futures import ThreadPoolExecutor

    sandboxes, rounds = (
        int(os.environ.get("NSPOD_CRI_SANDBOXES", "20")),
        int(os.environ.get("NSPOD_CRI_ROUNDS", "5")),
    )
    with ThreadPoolExecutor(4) as pool:
        for round_ in range(rounds):
            pods = list(pool.map(_make, [cri] * sandboxes, [f"r{round_}-{i}" for i in range(sandboxes)]))
            listed, ctrs = _states(cri)
            assert listed == dict.fromkeys(pods, "SANDBOX_READY")
            assert list(ctrs.values()) == ["CONTAINER_RUNNING"] * 2 * sandboxes
            if round_ == 2:
                main_pid = sh("systemctl", "show", "-p", "MainPID", "--value", "nspod-cri.service").strip()
                os.kill(int(main_pid), 9)
                wait_for(
                    "the kill", lambda: sh("systemctl", "is-active", "nspod-cri.service").strip() != "active"
                )
                cri("stopp", pods[0])  # the next call starts it again through the socket
                listed, ctrs = _states(cri)
                assert listed == {**dict.fromkeys(pods, "SANDBOX_READY"), pods[0]: "SANDBOX_NOTREADY"}
                assert sorted(ctrs.values()) == ["CONTAINER_EXITED"] * 2 + ["CONTAINER_RUNNING"] * 2 * (
                    sandboxes - 1
                )
            list(pool.map(lambda pod: (cri("stopp", pod), cri("rmp", pod)), pods))
            assert _states(cri) == ({}, {})
    _nothing_left()
