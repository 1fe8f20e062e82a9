"""Issue #27 item 1, podman's everyday verbs: ``exec``, ``kill``, ``restart``, ``port``, ``top`` and
``cp``, each against one running pod shared by the module (its app traps SIGUSR1, so a signal's
arrival shows), and each verb's bad input: one line, exit 2 or 254, nothing changed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_pods import Nspod, busybox_image, sh

pytestmark = pytest.mark.systemd
PORT = 18127
# the app: SIGUSR1 leaves a mark; its sleep is the unit's too, so KillUnit ends it and the loop goes on
LOOP = "trap 'echo usr1 >> /got' USR1; while true; do sleep 1; done"
UNIT_DIR = Path("/etc/systemd/system")  # inside the test host: an overlay that vanishes with it


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Nspod, str]]:
    base = tmp_path_factory.mktemp("verbsa")
    app = {
        "exec": ["/bin/sh", "-c", LOOP],
        "user": "0",
        "group": "0",
        "ports": [{"name": "http", "protocol": "tcp", "port": 80}],
    }
    image = busybox_image(
        base, app=app, applets=("sh", "sleep", "cat", "id", "pwd", "env", "stat", "ls", "tty")
    )
    nspod = Nspod(base / "data")
    ran = nspod("run", "--detach", "--name=verbs-a", f"--port=http:{PORT}", str(image))
    assert ran.returncode == 0, ran.stderr
    try:
        yield nspod, "verbs-a"
    finally:
        nspod("stop", "--force", "verbs-a")


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    first = result.stderr.splitlines()[0]
    assert first.startswith(("nspod: ", "usage:")), result.stderr


def test_port_prints_the_published_ports_as_podman_does(pod: tuple[Nspod, str]) -> None:
    nspod, name = pod
    assert nspod("port", name).stdout == f"80/tcp -> 0.0.0.0:{PORT}\n"
    assert nspod("port", name, "80/tcp").stdout == f"0.0.0.0:{PORT}\n"
    assert nspod("port", name, "80").stdout == f"0.0.0.0:{PORT}\n"
    one_line_error(nspod("port", name, "81"), 254)
    one_line_error(nspod("port", name, "80/sctp"), 2)
    one_line_error(nspod("port", "no-such-pod"), 254)


def test_top_lists_the_apps_processes(pod: tuple[Nspod, str]) -> None:
    nspod, name = pod
    shown = nspod("top", name, "--app", "bb")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["PID", "USER", "TIME", "COMMAND"], lines
    assert any(line.split()[1] == "root" and "/bin/sh -c trap" in line for line in lines[1:]), lines
    every = nspod("top", name).stdout.splitlines()
    assert every[0].split()[:2] == ["APP", "PID"] and every[1].split()[0] == "bb", every
    one_line_error(nspod("top", name, "--app", "nope"), 254)
    one_line_error(nspod("top", "no-such-pod"), 254)


def test_exec_takes_podmans_flags(pod: tuple[Nspod, str]) -> None:
    nspod, name = pod
    script = 'echo "$FOO $BAR"; pwd; id -u; id -g'
    flags = ["-e", "FOO=bar", "-e", "BAR", "-w", "/etc", "-u", "worker"]
    ran = nspod("exec", *flags, name, "--", "sh", "-c", script, env={"BAR": "from-host"})
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["bar from-host", "/etc", "1000", "1000"], ran.stdout
    numeric = nspod("exec", "-u", "1000:2000", name, "--", "id", "-g")
    assert numeric.stdout.strip() == "2000", numeric.stderr


def test_exec_reads_stdin_only_with_i(pod: tuple[Nspod, str]) -> None:
    nspod, name = pod
    argv = nspod.argv("exec", name, "--", "cat")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    closed = subprocess.run(argv, input="hello\n", capture_output=True, text=True, timeout=60, env=env)
    assert (closed.returncode, closed.stdout) == (0, ""), closed.stderr
    argv = nspod.argv("exec", "-i", name, "--", "cat")
    opened = subprocess.run(argv, input="hello\n", capture_output=True, text=True, timeout=60, env=env)
    assert (opened.returncode, opened.stdout) == (0, "hello\n"), opened.stderr


def test_exec_t_gives_a_terminal_and_without_it_none(pod: tuple[Nspod, str]) -> None:
    import pty

    nspod, name = pod
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    main, sub = pty.openpty()
    try:
        argv = nspod.argv("exec", "-t", name, "--", "tty")
        ran = subprocess.run(argv, stdin=sub, capture_output=True, timeout=60, env=env)
    finally:
        os.close(sub)
        os.close(main)
    assert ran.returncode == 0 and b"/dev/pts/" in ran.stdout, ran.stdout + ran.stderr
    plain = nspod("exec", name, "--", "tty")
    assert plain.stdout.strip() == "not a tty", plain.stdout + plain.stderr


def test_exec_keeps_the_confinement_enter_has(pod: tuple[Nspod, str]) -> None:
    nspod, name = pod
    fields = ("CapBnd", "CapEff", "Seccomp", "NoNewPrivs")
    show = ["sh", "-c", "cat /proc/self/status"]

    def confinement(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
        assert result.returncode == 0, result.stderr
        return {k: v.strip() for k, _, v in (line.partition(":") for line in result.stdout.splitlines())
                if k in fields}  # fmt: skip

    entered = confinement(nspod("enter", name, "--", *show))
    assert confinement(nspod("exec", name, "--", *show)) == entered
    assert confinement(nspod("exec", "-e", "X=1", "-w", "/", name, "--", *show)) == entered
    assert entered["Seccomp"] == "2", entered


def test_exec_refuses_bad_input_in_one_line(pod: tuple[Nspod, str]) -> None:
    nspod, name = pod
    one_line_error(nspod("exec", "-u", "nobody-here", name, "--", "id"), 254)
    one_line_error(nspod("exec", name), 2)
    one_line_error(nspod("exec", "-w", "relative", name, "--", "id"), 2)
    one_line_error(nspod("exec", "-e", "=x", name, "--", "id"), 2)
    one_line_error(nspod("exec", "--app", "nope", name, "--", "id"), 254)
    one_line_error(nspod("exec", "no-such-pod", "--", "id"), 254)
    one_line_error(nspod("exec", name, "--", "/no/such/program"), 254)


def test_cp_copies_files_and_trees_both_ways(pod: tuple[Nspod, str], tmp_path: Path) -> None:
    nspod, name = pod
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub/file").write_text("deep\n")
    (tree / "run.sh").write_text("#!/bin/sh\n")
    (tree / "run.sh").chmod(0o750)
    (tree / "link").symlink_to("sub/file")
    assert nspod("cp", str(tree), f"{name}:/srv").returncode == 0  # /srv is missing: made as a copy
    script = "cat /srv/sub/file; stat -c '%a %u' /srv/run.sh; cat /srv/link"
    shown = nspod("exec", name, "--", "sh", "-c", script)
    assert shown.stdout.splitlines() == ["deep", "750 0", "deep"], shown.stdout + shown.stderr
    assert nspod("cp", str(tree / "run.sh"), f"{name}:bb:/etc").returncode == 0  # into a directory
    assert "750" in nspod("exec", name, "--", "stat", "-c", "%a", "/etc/run.sh").stdout
    out = tmp_path / "out"
    out.mkdir()
    copied = nspod("cp", f"{name}:/srv", str(out))
    assert copied.returncode == 0, copied.stderr
    assert (out / "srv/sub/file").read_text() == "deep\n"
    assert stat.S_IMODE((out / "srv/run.sh").stat().st_mode) == 0o750
    assert os.readlink(out / "srv/link") == "sub/file"
    assert nspod("cp", f"{name}:/etc/passwd", str(out / "passwd")).returncode == 0
    assert (out / "passwd").read_text().startswith("root:x:0:0")


def test_cp_refuses_bad_input_in_one_line(pod: tuple[Nspod, str], tmp_path: Path) -> None:
    nspod, name = pod
    one_line_error(nspod("cp", f"{name}:/no/such/file", str(tmp_path)), 254)
    one_line_error(nspod("cp", str(tmp_path / "missing"), f"{name}:/tmp"), 254)
    one_line_error(nspod("cp", str(tmp_path), str(tmp_path / "x")), 2)  # no pod side
    one_line_error(nspod("cp", f"{name}:/a", f"{name}:/b"), 2)
    one_line_error(nspod("cp", f"{name}:nope:/etc/passwd", str(tmp_path)), 254)
    one_line_error(nspod("cp", "no-such-pod:/etc/passwd", str(tmp_path)), 254)
    one_line_error(nspod("cp", str(REPO / "README.md"), f"{name}:/no/such/dir/x"), 254)
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_restart_of_a_run_pod_is_refused_with_a_hint(pod: tuple[Nspod, str]) -> None:
    nspod, name = pod
    refused = nspod("restart", name)
    one_line_error(refused, 254)
    assert "hint:" in refused.stderr and "pod@NAME.service" in refused.stderr
    assert nspod.status(name)["state"] == "running"
    one_line_error(nspod("restart", "no-such-pod"), 254)


def test_kill_sends_the_signal_to_the_app(pod: tuple[Nspod, str], tmp_path: Path) -> None:
    nspod, name = pod
    one_line_error(nspod("kill", "-s", "SIGNOPE", name), 2)
    one_line_error(nspod("kill", "-s", "99", name), 2)
    one_line_error(nspod("kill", "--app", "nope", name), 254)
    one_line_error(nspod("kill", "no-such-pod"), 254)
    assert nspod.status(name)["state"] == "running"
    for how in ("USR1", "SIGUSR1", "10"):
        sent = nspod("kill", "-s", how, name)
        assert sent.returncode == 0, sent.stderr
    deadline = time.monotonic() + 20
    marks = ""
    while marks.count("usr1") < 3 and time.monotonic() < deadline:
        marks = nspod("exec", name, "--", "cat", "/got").stdout
        time.sleep(0.2)
    assert marks.count("usr1") == 3, marks
    assert nspod("kill", "-s", "TERM", "--app", "bb", name).returncode == 0
    ended = nspod("status", "--wait=30s", name)
    assert ended.returncode == 0 and "signal-bb=SIGTERM" in ended.stdout, ended.stdout + ended.stderr
    one_line_error(nspod("kill", name), 254)  # not running any more


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pod@.service as shipped, its commands this checkout's, and a data dir of its own."""
    root = tmp_path_factory.mktemp("verbsa-units")
    (root / "etc/pods").mkdir(parents=True)
    nspod = (f"{sys.executable} -m stage0 --dir {root / 'data'} --local-config {root / 'etc'} "
             f"--system-config {root / 'lib'} --insecure-options=image")  # fmt: skip
    text = (
        (REPO / "units/pod@.service").read_text()
        .replace("ExecStart=/usr/local/bin/nspod ", f"Environment=PYTHONPATH={REPO}\nExecStart={nspod} ")
        .replace("ExecStop=/usr/local/bin/nspod ", f"ExecStop={nspod} ")
    )  # fmt: skip
    (UNIT_DIR / "pod@.service").write_text(text)
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    yield root
    subprocess.run(["systemctl", "stop", "pod@again.service"], check=False)
    (UNIT_DIR / "pod@.service").unlink()
    subprocess.run(["systemctl", "daemon-reload"], check=True)


def test_restart_restarts_a_pod_unit(template: Path, tmp_path: Path) -> None:
    image = busybox_image(tmp_path, app={"exec": ["/bin/sleep", "300"], "user": "0", "group": "0"})
    (template / "etc/pods/again.toml").write_text(f'[[app]]\nimage = "{image}"\n')
    started = subprocess.run(["systemctl", "start", "pod@again"], capture_output=True, text=True, timeout=99)
    assert started.returncode == 0, started.stderr
    nspod = Nspod(template / "data")
    first = nspod("list", "--full", "--format=json").stdout
    before = sh("systemctl", "show", "--property=MainPID", "--value", "pod@again.service").strip()
    restarted = nspod("restart", "again")
    assert restarted.returncode == 0, restarted.stderr
    after = sh("systemctl", "show", "--property=MainPID", "--value", "pod@again.service").strip()
    assert after not in ("0", before), (before, after)
    assert nspod.status("again")["state"] == "running"
    uuid = restarted.stdout.strip()
    assert uuid not in first and uuid in nspod("list", "--full", "--format=json").stdout  # a new pod
    # restarts in a loop: each a new pod, running, one machine; none refused by the unit's start
    # rate limit (5 in 10 s), which a restart asked for resets
    for cycle in range(int(os.environ.get("NSPOD_RESTART_CYCLES", "20"))):
        again = nspod("restart", "again")
        assert again.returncode == 0, (cycle, again.stderr)
        assert nspod.status("again")["state"] == "running", cycle
    machines = sh("machinectl", "list", "--no-legend").strip().splitlines()
    assert [m.split()[0] for m in machines].count("again") == 1, machines
