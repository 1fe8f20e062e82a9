"""pod@NAME.service, the shipped template: systemctl start/stop/enable, pod files, drop-ins, restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_pods import busybox_image, sh

pytestmark = pytest.mark.systemd
TEMPLATE = REPO / "units/pod@.service"
UNIT_DIR = Path("/etc/systemd/system")  # inside the test host: an overlay that vanishes with it


class Host:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data, self.etc, self.lib = root / "data", root / "etc", root / "usr-lib"
        (self.etc / "pods").mkdir(parents=True)

    def nspod(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [
            sys.executable,
            "-m",
            "stage0",
            "--dir",
            str(self.data),
            "--local-config",
            str(self.etc),
            "--system-config",
            str(self.lib),
            *args,
        ]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)}
        )

    def pod_file(self, name: str, text: str) -> Path:
        path = self.etc / "pods" / f"{name}.toml"
        path.write_text(text)
        return path


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    host = Host(tmp_path)
    nspod = (
        f"{sys.executable} -m stage0 --dir {host.data} --local-config {host.etc} "
        f"--system-config {host.lib} --insecure-options=image"
    )
    text = (
        TEMPLATE.read_text()
        .replace("ExecStart=/usr/local/bin/nspod ", f"Environment=PYTHONPATH={REPO}\nExecStart={nspod} ")
        .replace("ExecStop=/usr/local/bin/nspod ", f"ExecStop={nspod} ")
    )
    # the shipped template, with only the commands swapped
    assert f"ExecStart={nspod} pod exec %i" in text and f"ExecStop={nspod} pod halt %i" in text
    (UNIT_DIR / "pod@.service").write_text(text)
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    yield host
    for unit in sh("systemctl", "list-units", "--all", "--no-legend", "--plain", "pod@*").split("\n"):
        if unit.strip():
            subprocess.run(["systemctl", "stop", unit.split()[0]], check=False)
            subprocess.run(["systemctl", "reset-failed", unit.split()[0]], check=False)
    (UNIT_DIR / "pod@.service").unlink()
    subprocess.run(["systemctl", "daemon-reload"], check=True)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_image(tmp_path_factory.mktemp("podunit"))


def prop(unit: str, name: str) -> str:
    return sh("systemctl", "show", f"--property={name}", "--value", unit).strip()


def test_start_status_journal_stop(host: Host, image: Path) -> None:
    host.pod_file(
        "web",
        f'''
[[app]]
image = "{image}"
exec = "/bin/sh"
args = ["-c", "echo web-is-up; exec sleep 300"]
''',
    )
    started = subprocess.run(["systemctl", "start", "pod@web"], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr + sh("journalctl", "-u", "pod@web", "--no-pager")
    assert prop("pod@web.service", "ActiveState") == "active"
    status = sh("systemctl", "status", "pod@web", "--no-pager")
    assert "systemd-nspawn" in status.split("Main PID:")[1].splitlines()[0]
    assert 'Status: "Container running: Ready."' in status
    assert "web" in sh("machinectl", "list", "--no-legend")
    assert "Unit: pod@web.service" in sh("machinectl", "status", "web")
    deadline = time.monotonic() + 10
    while "web-is-up" not in sh("journalctl", "-u", "pod@web", "-o", "cat") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "web-is-up" in sh("journalctl", "-u", "pod@web", "-o", "cat")
    pods = json.loads(host.nspod("list", "--full", "--format", "json").stdout)
    assert [p["state"] for p in pods] == ["running"]
    stopped = subprocess.run(["systemctl", "stop", "pod@web"], capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0
    assert prop("pod@web.service", "ActiveState") == "inactive"  # not failed
    assert prop("pod@web.service", "Result") == "success"
    assert json.loads(host.nspod("list", "--full", "--format", "json").stdout)[0]["state"] == "exited"


def test_enable_survives_daemon_reload(host: Host, image: Path) -> None:
    host.pod_file("db", f'[[app]]\nimage = "{image}"\n')
    assert subprocess.run(["systemctl", "enable", "pod@db"], capture_output=True).returncode == 0
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    assert sh("systemctl", "is-enabled", "pod@db").strip() == "enabled"
    assert (UNIT_DIR / "machines.target.wants/pod@db.service").is_symlink()
    assert subprocess.run(["systemctl", "disable", "pod@db"], capture_output=True).returncode == 0


def test_broken_pod_file_fails_the_start_naming_file_and_key(host: Host, image: Path) -> None:
    path = host.pod_file("broken", f'[[app]]\nimage = "{image}"\nexecc = "/bin/true"\n')
    started = subprocess.run(
        ["systemctl", "start", "pod@broken"], capture_output=True, text=True, timeout=120
    )
    assert started.returncode != 0
    journal = sh("journalctl", "-u", "pod@broken", "-o", "cat", "--no-pager")
    assert f"{path}: /app/0/execc" in journal or f"{path}: /app/0: " in journal, journal
    assert "broken" not in sh("machinectl", "list", "--no-legend")
    assert not (host.data / "pods/run").exists() or list((host.data / "pods/run").iterdir()) == []
    checked = host.nspod("pod", "validate", str(path))
    assert checked.returncode == 254 and "/app/0" in checked.stderr


def test_service_table_becomes_a_drop_in_and_restart_on_failure(host: Host, image: Path) -> None:
    host.pod_file(
        "flaky",
        f'''
[[app]]
image = "{image}"
exec = "/bin/sh"
args = ["-c", "sleep 1; exit 1"]

[service]
Restart = "on-failure"
RestartSec = 1
After = ["pod@db.service"]
''',
    )
    installed = host.nspod("pod", "install", "flaky")
    assert installed.returncode == 0, installed.stderr
    drop_in = Path(installed.stdout.strip()).read_text()
    assert (
        "[Unit]\nAfter=pod@db.service" in drop_in
        and "[Service]\nRestart=on-failure\nRestartSec=1" in drop_in
    )
    assert prop("pod@flaky.service", "Restart") == "on-failure"
    subprocess.run(["systemctl", "start", "pod@flaky"], capture_output=True, timeout=120)
    deadline = time.monotonic() + 30
    while int(prop("pod@flaky.service", "NRestarts") or 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert int(prop("pod@flaky.service", "NRestarts")) >= 1
    subprocess.run(["systemctl", "stop", "pod@flaky"], check=False)
    assert host.nspod("pod", "uninstall", "flaky").returncode == 0
    assert prop("pod@flaky.service", "Restart") == "no"


def probe_image(
    directory: Path,
    probe: Path,
    args: list[str],
    *,
    notify: bool,
    ports: list[dict[str, object]] | None = None,
    isolators: list[dict[str, object]] | None = None,
    secret: bool = False,
) -> Path:
    """An image holding only the static probe (``secret``: and /secret, mode 0600, uid 1234's)."""
    import shutil

    from stage0.images.aci.build import build_aci

    root = directory / "layout"
    (root / "rootfs").mkdir(parents=True)
    shutil.copy(probe, root / "rootfs/probe")
    if secret:
        (root / "rootfs/secret").write_text("only CAP_DAC_OVERRIDE opens this for root\n")
        os.chown(root / "rootfs/secret", 1234, 1234)
        os.chmod(root / "rootfs/secret", 0o600)
    manifest = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": "example.com/probe",
        "app": {"exec": ["/probe", *args], "user": "0", "group": "0", "isolators": isolators or []},
        "annotations": [{"name": "appc.io/executor/supports-systemd-notify", "value": str(notify).lower()}],
    }
    (root / "manifest").write_text(json.dumps(manifest))
    aci = directory / "probe.aci"
    build_aci(str(root), str(aci))
    return aci


def monotonic(unit: str, name: str) -> float:
    return int(prop(unit, f"{name}Monotonic")) / 1e6


def test_web_starts_only_after_db_is_ready(host: Host, probe: Path, tmp_path: Path) -> None:
    db = probe_image(tmp_path / "db", probe, ["notify", "2000"], notify=True)
    host.pod_file("db", f'[[app]]\nimage = "{db}"\n')
    web = probe_image(tmp_path / "web", probe, ["notify", "0"], notify=True)
    host.pod_file(
        "web",
        f'[[app]]\nimage = "{web}"\n\n[service]\nAfter = ["pod@db.service"]\n'
        f'Requires = ["pod@db.service"]\n',
    )
    assert host.nspod("pod", "install", "web").returncode == 0
    started = subprocess.run(["systemctl", "start", "pod@web"], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr + sh("journalctl", "-u", "pod@db", "--no-pager")
    db_started = monotonic("pod@db.service", "ExecMainStartTimestamp")
    db_ready = monotonic("pod@db.service", "ActiveEnterTimestamp")
    web_started = monotonic("pod@web.service", "ExecMainStartTimestamp")
    assert db_ready - db_started >= 2.0  # active only once the app said READY=1
    assert web_started >= db_ready  # and only then was web started
    assert "probe sent READY=1" in sh("journalctl", "-u", "pod@db", "-o", "cat")
    for unit in ("pod@web", "pod@db"):
        subprocess.run(["systemctl", "stop", unit], check=False, timeout=120)
    assert host.nspod("pod", "uninstall", "web").returncode == 0


def test_shipped_units_verify_and_gc_runs(host: Host, image: Path, tmp_path: Path) -> None:
    units = sorted((REPO / "units").glob("*.service")) + sorted((REPO / "units").glob("*.timer"))
    staged = tmp_path / "units"
    staged.mkdir()
    for unit in units:  # systemd-analyze wants instances of templates and existing binaries
        name = unit.name.replace("@.service", "@check.service")
        (staged / name).write_text(unit.read_text().replace("/usr/local/bin/nspod", "/usr/bin/true"))
    verified = subprocess.run(
        ["systemd-analyze", "verify", *(str(p) for p in sorted(staged.iterdir()))],
        capture_output=True,
        text=True,
        cwd=staged,
    )
    assert verified.returncode == 0, verified.stderr
    tmpfiles = subprocess.run(
        [
            "systemd-tmpfiles",
            "--create",
            "--prefix=/run/nspod",
            str(REPO / "units/tmpfiles.d/nspod.conf"),
        ],
        capture_output=True,
        text=True,
    )
    assert tmpfiles.returncode == 0 and Path("/run/nspod/pods").is_dir(), tmpfiles.stderr
    # the gc service, with only its command pointed at this checkout
    command = f"{sys.executable} -m stage0 --dir {host.data}"
    text = (REPO / "units/nspod-gc.service").read_text().replace("/usr/local/bin/nspod", command)
    (UNIT_DIR / "nspod-gc.service").write_text(
        text.replace("[Service]", f"[Service]\nEnvironment=PYTHONPATH={REPO}")
    )
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    assert host.nspod("--insecure-options=image", "run", str(image)).returncode == 0
    ran = subprocess.run(
        ["systemctl", "start", "nspod-gc.service"], capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0 and prop("nspod-gc.service", "Result") == "success", ran.stderr
    assert json.loads(host.nspod("list", "--format", "json").stdout)[0]["state"] == "exited garbage"
    (UNIT_DIR / "nspod-gc.service").unlink()


def test_socket_activation_hands_the_fd_and_its_name_to_the_app(
    host: Host, probe: Path, tmp_path: Path
) -> None:
    import socket

    image = probe_image(
        tmp_path / "sock",
        probe,
        ["serve"],
        notify=False,
        ports=[{"name": "http", "protocol": "tcp", "port": 8080, "socketActivated": True}],
    )
    host.pod_file("sock", f'[[app]]\nimage = "{image}"\n')
    # 127.0.0.1 of the test host's own network namespace: nothing leaves the machine
    (UNIT_DIR / "pod@sock.socket").write_text(
        "[Socket]\nListenStream=127.0.0.1:18080\nFileDescriptorName=http\n"
    )
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    try:
        assert subprocess.run(["systemctl", "start", "pod@sock.socket"], capture_output=True).returncode == 0
        assert prop("pod@sock.service", "ActiveState") == "inactive"  # nothing runs before the first client
        with socket.create_connection(("127.0.0.1", 18080), timeout=60) as client:
            client.settimeout(60)
            answer = client.makefile().readline()
        assert answer == "probe fd=3 name=http\n"  # the pod started, and the app got the very socket
        deadline = time.monotonic() + 30  # the app can answer while the pod's boot is still finishing
        while prop("pod@sock.service", "ActiveState") != "active" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert prop("pod@sock.service", "ActiveState") == "active"
        journal = sh("journalctl", "-u", "pod@sock", "-o", "cat")
        assert "LISTEN_FDNAMES=http" in journal, journal
    finally:
        subprocess.run(
            ["systemctl", "stop", "pod@sock.socket", "pod@sock.service"], check=False, timeout=120
        )
        (UNIT_DIR / "pod@sock.socket").unlink()
        subprocess.run(["systemctl", "daemon-reload"], check=True)


def test_status_shows_how_many_apps_are_ready(host: Host, probe: Path, tmp_path: Path) -> None:
    quick = probe_image(tmp_path / "quick", probe, ["notify", "1000"], notify=True)
    slow = probe_image(tmp_path / "slow", probe, ["notify", "3000"], notify=True)
    host.pod_file(
        "progress",
        f'[[app]]\nimage = "{quick}"\nname = "quick"\n\n[[app]]\nimage = "{slow}"\nname = "slow"\n',
    )
    subprocess.run(["systemctl", "start", "--no-block", "pod@progress"], check=True)
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while prop("pod@progress.service", "ActiveState") != "active" and time.monotonic() < deadline:
        text = prop("pod@progress.service", "StatusText")
        if text and text not in seen:
            seen.append(text)
        time.sleep(0.05)
    assert prop("pod@progress.service", "ActiveState") == "active"
    assert "1/2 apps ready" in seen, seen  # while the slow app was still on its way
    subprocess.run(["systemctl", "stop", "pod@progress"], check=False, timeout=120)


def test_image_isolators_apply_to_the_app(host: Host, probe: Path, tmp_path: Path) -> None:
    import shutil

    from stage0.images.aci.build import build_aci

    root = tmp_path / "iso/layout"
    (root / "rootfs").mkdir(parents=True)
    shutil.copy(probe, root / "rootfs/probe")
    isolators = [
        {"name": "resource/memory", "value": {"limit": "64Mi"}},
        {"name": "resource/cpu", "value": {"limit": "500m"}},
        {
            "name": "os/linux/capabilities-retain-set",
            "value": {"set": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]},
        },
        {"name": "os/linux/no-new-privileges", "value": True},
    ]
    manifest = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": "example.com/iso",
        "app": {"exec": ["/probe", "report"], "user": "0", "group": "0", "isolators": isolators},
    }
    (root / "manifest").write_text(json.dumps(manifest))
    aci = tmp_path / "iso.aci"
    build_aci(str(root), str(aci))
    ran = host.nspod("--insecure-options=image", "run", str(aci))
    assert ran.returncode == 0, ran.stderr
    lines = [line.split(": ", 1)[-1] for line in ran.stdout.splitlines()]
    assert "capeff 0000000000000401" in lines  # CAP_CHOWN (0) and CAP_NET_BIND_SERVICE (10) only
    assert "nonewprivs 1" in lines
    started = host.nspod(
        "--insecure-options=image",
        "run",
        "--detach",
        "--name=iso",
        str(aci),
        "--exec=/probe",
        "--",
        "sleep",
        "600",
    )
    assert started.returncode == 0, started.stderr
    try:
        shown = sh(
            "systemctl", "-M", "iso", "show", "-p", "MemoryMax", "-p", "CPUQuotaPerSecUSec", "iso.service"
        )
        assert "MemoryMax=67108864" in shown and "CPUQuotaPerSecUSec=500ms" in shown, shown
    finally:
        host.nspod("stop", started.stdout.strip())
