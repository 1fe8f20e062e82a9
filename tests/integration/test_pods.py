"""Pods as systemd units, against a real systemd: exit codes, several apps, detached pods and what
systemctl, machinectl and journalctl say about them, enter, stop, gc, kill -9, handlers, env."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from stage0.images.aci.build import build_aci
from tests.conftest import REPO, assert_output_schema

pytestmark = pytest.mark.systemd
APPLETS = ("sh", "echo", "sleep", "cat", "env", "ls", "id", "pwd", "true", "tty", "wc")


def busybox_image(
    directory: Path,
    app: Mapping[str, object] | None = None,
    name: str = "example.com/bb",
    annotations: Mapping[str, str] | None = None,
    applets: tuple[str, ...] = APPLETS,
) -> Path:
    root = directory / "layout"  # may hold files of the caller's already
    (root / "rootfs/bin").mkdir(parents=True)
    (root / "rootfs/etc").mkdir()
    (root / "rootfs/bin/busybox").write_bytes(Path("/bin/busybox").read_bytes())
    (root / "rootfs/bin/busybox").chmod(0o755)
    for applet in applets:
        (root / "rootfs/bin" / applet).symlink_to("busybox")
    (root / "rootfs/etc/passwd").write_text("root:x:0:0:root:/:/bin/sh\nworker:x:1000:1000::/:/bin/sh\n")
    (root / "rootfs/etc/group").write_text("root:x:0:\nworker:x:1000:\nextra:x:2000:\n")
    manifest = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": [{"name": "version", "value": "1.0"}],
        "app": app or {"exec": ["/bin/sh", "-c", "echo hello"], "user": "0", "group": "0"},
        "annotations": [{"name": k, "value": v} for k, v in (annotations or {}).items()],
    }
    (root / "manifest").write_text(json.dumps(manifest))
    aci = directory / "image.aci"
    build_aci(str(root), str(aci))
    return aci


@pytest.fixture(scope="module")
def bb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_image(tmp_path_factory.mktemp("bb"))


class Nspod:
    def __init__(self, data: Path) -> None:
        self.data = data

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "stage0", "--dir", str(self.data), "--insecure-options=image", *args]

    def __call__(
        self, *args: str, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        )

    def status(self, uuid: str) -> dict[str, str]:
        out = self("status", uuid).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture
def nspod(tmp_path: Path) -> Iterator[Nspod]:
    tool = Nspod(tmp_path / "data")
    yield tool
    for pod in json.loads(tool("list", "--full", "--format", "json").stdout or "[]"):
        tool("stop", "--force", pod["uuid"])
    assert sh("machinectl", "list", "--no-legend").strip() == ""
    units = sh("systemctl", "list-units", "--all", "--no-legend", "--plain", "nspod-*").splitlines()
    assert [u for u in units if not u.startswith("nspod-metadata")] == []  # the service is the host's


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60).stdout


@pytest.mark.parametrize("code", [0, 3, 7])
def test_run_passes_the_exit_code_through(nspod: Nspod, bb: Path, code: int) -> None:
    result = nspod("run", str(bb), "--exec=/bin/sh", "--", "-c", f"echo out-{code}; exit {code}")
    assert result.returncode == code, result.stderr
    assert f"bb: out-{code}\n" in result.stdout  # the app's name, no uptime stamp (#9)
    pods = json.loads(nspod("list", "--full", "--format", "json").stdout)
    assert [p["state"] for p in pods] == ["exited"]
    assert nspod.status(pods[0]["uuid"])["app-bb"] == str(code)
    assert_output_schema("pod-list", pods)
    assert pods[0]["apps"][0]["exit_code"] == code and pods[0]["unit"].startswith("nspod-")
    status = json.loads(nspod("status", "--format=json", pods[0]["uuid"]).stdout)
    assert_output_schema("pod-status", status)
    assert status["exited"] is True and status["pid"] is None
    assert f"bb={code}" in nspod("list").stdout  # APPS with their exit codes


def test_a_pod_that_ends_during_its_boot_counts_as_started(nspod: Nspod, bb: Path) -> None:
    # /bin/true ends before the pod's systemd has finished booting (when it says READY=1): the
    # pod's unit must not fail for never having been ready ('protocol')
    for _ in range(4):
        assert nspod("run", str(bb), "--exec=/bin/true").returncode == 0
    sh("journalctl", "--sync")
    for pod in json.loads(nspod("list", "--full", "--format", "json").stdout):
        messages = sh("journalctl", "-u", f"nspod-{pod['uuid']}.service", "-o", "cat")
        assert "Deactivated successfully" in messages and "'protocol'" not in messages, messages


def test_a_detached_pod_that_fails_before_ready_says_so(nspod: Nspod, tmp_path: Path) -> None:
    # says when it is ready (sd_notify): a plain app is ready once it runs, so one ending at once is either
    image = busybox_image(tmp_path, annotations={"appc.io/executor/supports-systemd-notify": "true"})
    ran = nspod("run", "--detach", str(image), "--exec=/bin/sh", "--", "-c", "exit 3")
    assert ran.returncode == 3 and "ended before it was ready (exit code 3)" in ran.stderr, ran.stderr


def test_three_apps_first_failure_wins(nspod: Nspod, bb: Path) -> None:
    result = nspod(
        "run",
        str(bb),
        "--name=a",
        "--exec=/bin/sh",
        "--",
        "-c",
        "sleep 1; exit 0",
        "---",
        str(bb),
        "--name=b",
        "--exec=/bin/sh",
        "--",
        "-c",
        "sleep 1; exit 5",
        "---",
        str(bb),
        "--name=c",
        "--exec=/bin/sh",
        "--",
        "-c",
        "sleep 2; exit 6",
        # c's shell dies before its sleep when the pod stops: that must not wait out a stop timeout
        timeout=45,
    )
    assert result.returncode == 5, result.stderr
    uuid = json.loads(nspod("list", "--full", "--format", "json").stdout)[0]["uuid"]
    status = nspod.status(uuid)
    assert status["app-a"] == "0" and status["app-b"] == "5"
    # ended by the pod's shutdown (SIGTERM: 128 + 15, as a shell says) unless it was faster
    assert (status["app-c"], status.get("signal-c")) in (("6", None), ("143", "SIGTERM"))


def test_detached_pod_as_systemd_sees_it(nspod: Nspod, bb: Path) -> None:
    started = nspod(
        "run",
        "--detach",
        "--name=web",
        str(bb),
        "--exec=/bin/sh",
        "--",
        "-c",
        "echo web-says-hello; exec sleep 300",
    )
    assert started.returncode == 0, started.stderr
    uuid = started.stdout.strip()
    unit = "nspod-web.service"
    assert "web" in sh("machinectl", "list", "--no-legend")
    machine_status = sh("machinectl", "status", "web")
    assert f"Unit: {unit}" in machine_status
    assert (
        "systemd-nspawn"
        in sh("systemctl", "status", unit, "--no-pager").split("Main PID:")[1].splitlines()[0]
    )
    deadline = time.monotonic() + 10
    while "web-says-hello" not in sh("journalctl", "-u", unit, "-o", "cat") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "web-says-hello" in sh("journalctl", "-u", unit, "-o", "cat")
    assert "web-says-hello" in sh("journalctl", "-M", "web", "-t", "bb", "-o", "cat")
    # machined reaches the pod's own D-Bus (socket-activated inside); seen refusing right after start
    # on a busy host, so allow what a user would: a few tries over five seconds
    # (#9 defect 4: it used to connect, run nothing for want of PAM config, and exit 0)
    argv = ["machinectl", "-q", "shell", "web", "/bin/sh", "-c", "echo shell-says-$((6*7)); id -u; hostname"]
    for _ in range(10):
        shell = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if "shell-says-42" in shell.stdout:
            break
        time.sleep(0.5)
    assert shell.stdout.split() == ["shell-says-42", "0", "web"], (shell.stdout, shell.stderr)
    login = subprocess.run(  # machinectl login gets a getty (which wants a password from nobody but root)
        ["timeout", "5", "machinectl", "login", "web"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert "web login:" in login.stdout, (login.stdout, login.stderr)
    entered = nspod("enter", uuid[:8], "/bin/sh", "-c", "echo $AC_APP_NAME; ls /bin/busybox")
    assert entered.returncode == 0 and entered.stdout.split() == ["bb", "/bin/busybox"], entered.stderr
    status = nspod.status(uuid)
    assert status["state"] == "running" and int(status["pid"]) > 0
    shown = json.loads(nspod("status", "--format=json", "web").stdout)  # by name
    assert_output_schema("pod-status", shown)
    assert (
        shown["pid"] == int(status["pid"])
        and shown["unit"] == unit
        and shown["apps"][0]["exit_code"] is None
    )

    assert nspod("stop", uuid[:8]).returncode == 0
    assert nspod.status(uuid)["state"] == "exited"
    assert sh("systemctl", "list-units", "--all", "--no-legend", "--plain", unit).strip() == ""
    assert sh("machinectl", "list", "--no-legend").strip() == ""

    pod_dir = nspod.data / "pods" / "run" / uuid
    assert nspod("gc", "--grace-period=0s").returncode == 0
    assert not pod_dir.exists()
    assert nspod("list", "--no-legend").stdout == ""
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(nspod.data) not in mounts
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        assert not (hierarchy / "machine.slice" / unit).exists(), hierarchy
    assert nspod("gc", "--grace-period=0s").returncode == 0  # idempotent


def test_kill_9_of_foreground_run_leaves_the_pod_running(nspod: Nspod, bb: Path) -> None:
    process = subprocess.Popen(
        nspod.argv("run", str(bb), "--exec=/bin/sleep", "--", "300"),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    uuid = ""
    while time.monotonic() < deadline:
        pods = json.loads(nspod("list", "--full", "--format", "json").stdout or "[]")
        if (
            pods
            and pods[0]["state"] == "running"
            and nspod("status", "--wait-ready=10s", pods[0]["uuid"]).returncode == 0
        ):
            uuid = pods[0]["uuid"]
            break
        time.sleep(0.1)
    assert uuid
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(0.5)
    assert nspod.status(uuid)["state"] == "running"
    assert nspod("stop", uuid).returncode == 0
    assert nspod.status(uuid)["state"] == "exited"


def test_event_handlers_run_in_order(nspod: Nspod, tmp_path: Path) -> None:
    app = {
        "exec": ["/bin/sh", "-c", "echo main >> /order"],
        "user": "0",
        "group": "0",
        "eventHandlers": [
            {"name": "pre-start", "exec": ["/bin/sh", "-c", "echo pre-start >> /order"]},
            {"name": "post-stop", "exec": ["/bin/sh", "-c", "echo post-stop >> /order"]},
        ],
    }
    image = busybox_image(tmp_path / "handlers", app, name="example.com/handlers")
    assert nspod("run", str(image)).returncode == 0
    uuid = json.loads(nspod("list", "--full", "--format", "json").stdout)[0]["uuid"]
    order = nspod.data / "pods/run" / uuid / "overlay/handlers/upper/order"
    assert order.read_text() == "pre-start\nmain\npost-stop\n"


def test_environment_precedence(nspod: Nspod, tmp_path: Path) -> None:
    app = {
        "exec": ["/bin/env"],
        "user": "worker",
        "group": "extra",
        "workingDirectory": "/etc",
        "environment": [
            {"name": "FROM_HOST", "value": "image"},
            {"name": "FROM_FILE", "value": "image"},
            {"name": "FROM_SET", "value": "image"},
            {"name": "FROM_APP", "value": "image"},
            {"name": "IMAGE_ONLY", "value": "image"},
        ],
    }
    image = busybox_image(tmp_path / "env", app, name="example.com/env")
    env_file = tmp_path / "env.txt"
    env_file.write_text("FROM_FILE=file\nFROM_SET=file\nFROM_APP=file\n")
    result = nspod(
        "run",
        "--inherit-env",
        f"--set-env-file={env_file}",
        "--set-env=FROM_SET=set",
        "--set-env=FROM_APP=set",
        str(image),
        "--environment=FROM_APP=app",
        env={"FROM_HOST": "host", "HOST_ONLY": "host"},
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split(": ", 1)[-1] for line in result.stdout.splitlines()}
    expected = {
        "HOST_ONLY=host",
        "FROM_HOST=image",
        "IMAGE_ONLY=image",
        "FROM_FILE=file",
        "FROM_SET=set",
        "FROM_APP=app",
        "AC_APP_NAME=env",
    }
    assert expected <= lines, result.stdout


def test_user_group_and_working_directory(nspod: Nspod, tmp_path: Path) -> None:
    app = {
        "exec": ["/bin/sh", "-c", "id -u; id -g; pwd"],
        "user": "worker",
        "group": "extra",
        "workingDirectory": "/etc",
    }
    image = busybox_image(tmp_path / "ids", app, name="example.com/ids")
    result = nspod("run", str(image))
    assert result.returncode == 0, result.stderr
    assert [line.split(": ", 1)[-1] for line in result.stdout.splitlines()][-3:] == ["1000", "2000", "/etc"]


def test_prepare_then_run_prepared_and_rm(nspod: Nspod, bb: Path, tmp_path: Path) -> None:
    uuid_file = tmp_path / "uuid"
    prepared = nspod("prepare", f"--uuid-file-save={uuid_file}", str(bb))
    assert prepared.returncode == 0 and prepared.stdout.strip() == uuid_file.read_text().strip()
    assert nspod("status", f"--uuid-file={uuid_file}").stdout.startswith("state=prepared")
    manifest = json.loads(nspod("cat-manifest", f"--uuid-file={uuid_file}").stdout)
    assert manifest["apps"][0]["name"] == "bb"
    ran = nspod("run-prepared", prepared.stdout.strip())
    assert ran.returncode == 0 and "hello" in ran.stdout
    assert nspod("rm", f"--uuid-file={uuid_file}").returncode == 0
    assert nspod("list", "--no-legend").stdout == ""


def test_bad_exec_is_a_clear_error(nspod: Nspod, bb: Path) -> None:
    result = nspod("run", str(bb), "--exec=/bin/nonexistent")
    assert result.returncode == 254
    assert "'/bin/nonexistent' is not an executable file in the image" in result.stderr


def test_logs_of_an_exited_pod(nspod: Nspod, bb: Path) -> None:
    # detached: the lines come through the pod's console (the foreground's: tests/integration/test_stdio.py)
    started = nspod(
        "run", "--detach", str(bb), "--exec=/bin/sh", "--", "-c", "echo first-line; echo second-line"
    )
    assert started.returncode == 0, started.stderr
    uuid = started.stdout.strip()
    assert nspod("status", "--wait=30s", uuid).returncode == 0
    logs = nspod("logs", uuid[:8])
    assert logs.returncode == 0
    assert logs.stdout.splitlines()[-2:] == ["bb: first-line", "bb: second-line"]  # as run shows them
    per_app = nspod("logs", "--app", "bb", uuid[:8])  # after the pod's end too
    assert (per_app.returncode, per_app.stdout) == (0, "first-line\nsecond-line\n"), per_app.stderr
    unknown = nspod("logs", "--app", "nope", uuid[:8])
    assert unknown.returncode == 254 and "has no app nope" in unknown.stderr and "bb" in unknown.stderr


def test_rm_removes_the_pod_once_it_ended(nspod: Nspod, bb: Path) -> None:
    ran = nspod("run", "--rm", str(bb), "--exec=/bin/sh", "--", "-c", "echo bye; exit 4")
    assert ran.returncode == 4 and "bb: bye" in ran.stdout, ran.stderr
    assert json.loads(nspod("list", "--format=json").stdout) == []
    both = nspod("run", "--rm", "--detach", str(bb))
    assert both.returncode == 2 and "--rm needs a foreground run" in both.stderr


def test_an_external_stage1_runs_the_pod(nspod: Nspod, bb: Path) -> None:
    """--stage1=COMMAND: the same entry points as a program of their own (stage0/host/executor.py)."""
    stage1 = f"{sys.executable} -m stage1"
    result = nspod(f"--stage1={stage1}", "run", str(bb), "--exec=/bin/sh", "--", "-c", "echo out; exit 6")
    assert (result.returncode, result.stdout) == (6, "bb: out\n"), result.stderr
