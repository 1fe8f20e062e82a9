"""``nspod enter`` keeps the app's confinement (issue #11, item 4): what the app may not do, a
command entered into it may not either — rkt's enter ran everything with the pod's full root."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_output_schema
from tests.integration.test_confinement import probe_lines
from tests.integration.test_pod_units import probe_image
from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd

CAP_NET_BIND_SERVICE = 1 << 10


SHOWN: dict[str, Any] = {}  # what status --format json and cat-manifest said of the running pod


@pytest.fixture(scope="module")
def entered(tmp_path_factory: pytest.TempPathFactory, probe: Path) -> dict[str, str]:
    """What the probe, entered into a running app that keeps CAP_NET_BIND_SERVICE alone, reports."""
    base = tmp_path_factory.mktemp("enter")
    image = probe_image(base / "img", probe, ["sleep", "600"], notify=False, secret=True)
    nspod = Nspod(base / "data")
    ran = nspod("run", "--detach", "--name=enter-probe", str(image), "--caps-retain=CAP_NET_BIND_SERVICE")
    assert ran.returncode == 0, ran.stderr
    try:
        lines: list[str] = []
        for args in (["report"], ["sysfs"], ["openr", "/secret", "/probe", "/proc/kallsyms"]):
            inside = nspod("enter", "enter-probe", "--", "/probe", *args)
            assert inside.returncode == 0, inside.stderr
            lines += probe_lines(inside.stdout)
        failed = nspod("enter", "enter-probe", "--", "/probe", "nonsense-exit")
        lines.append(f"exit {failed.returncode}")
        SHOWN["status"] = json.loads(nspod("status", "--format=json", "enter-probe").stdout)
        SHOWN["manifest"] = json.loads(nspod("cat-manifest", "enter-probe").stdout)
    finally:
        nspod("stop", "enter-probe")
    # "openr PATH OK N" → {"openr PATH": "N"}, "openr PATH EACCES" → {"openr PATH": "EACCES"}
    return {" ".join(line.split()[:2]) if line.startswith("openr") else line.split()[0]: line.split()[-1]
            for line in lines if line.split()}  # fmt: skip


def test_an_entered_command_has_the_apps_one_capability(entered: dict[str, str]) -> None:
    assert int(entered["capbnd"], 16) == CAP_NET_BIND_SERVICE, entered
    assert int(entered["capeff"], 16) == CAP_NET_BIND_SERVICE, entered


def test_an_entered_command_runs_under_the_apps_seccomp_filter(entered: dict[str, str]) -> None:
    assert entered["seccomp"] == "2" and entered["ptrace"] == "EPERM", entered  # nspod's filter


def test_an_entered_root_cannot_read_what_only_cap_dac_override_opens(entered: dict[str, str]) -> None:
    assert entered["openr /secret"] == "EACCES", entered  # mode 0600, another user's
    assert int(entered["openr /probe"]) > 0, entered  # while its own root's files open


def test_an_entered_command_meets_the_apps_hidden_kernel_paths(entered: dict[str, str]) -> None:
    # covered as for the app: empty, or (mode 000, and no CAP_DAC_OVERRIDE here) not even opened
    assert entered["openr /proc/kallsyms"] in ("0", "EACCES"), entered


def test_an_entered_commands_exit_status_comes_back(entered: dict[str, str]) -> None:
    assert entered["exit"] == "64", entered  # the probe's usage error


def test_status_shows_the_effective_profile(entered: dict[str, str]) -> None:
    assert_output_schema("pod-status", SHOWN["status"])
    profile = SHOWN["status"]["profile"]["probe"]
    assert profile["capabilities"] == ["CAP_NET_BIND_SERVICE"], profile
    assert (profile["seccomp"]["mode"], profile["seccomp"]["errno"]) == ("default", "EPERM"), profile
    assert (profile["device_policy"], profile["kernel_paths"]) == ("closed", "protected"), profile


def test_cat_manifest_shows_the_isolators_in_effect(entered: dict[str, str]) -> None:
    (app,) = SHOWN["manifest"]["apps"]
    assert {"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_NET_BIND_SERVICE"]}} in app[
        "app"
    ]["isolators"], app


def test_enter_from_a_terminal_gives_the_command_a_terminal(tmp_path: Path, probe: Path) -> None:
    import os
    import subprocess

    from tests.conftest import REPO

    image = probe_image(tmp_path / "img", probe, ["sleep", "600"], notify=False)
    nspod = Nspod(tmp_path / "data")
    assert nspod("run", "--detach", "--name=enter-tty", str(image)).returncode == 0
    master, slave = os.openpty()
    try:
        entered = subprocess.run(
            nspod.argv("enter", "enter-tty", "--", "/probe", "openw", "/dev/tty"),
            stdin=slave, stdout=slave, stderr=slave, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        os.close(slave)
        output = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last user has gone
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
        nspod("stop", "enter-tty")
    text = output.decode(errors="replace")
    # /dev/tty opens only for a process with a controlling terminal (ENXIO without one)
    assert entered.returncode == 0 and "openw /dev/tty OK" in text, text


def test_enters_in_parallel_each_get_their_own_confined_unit(tmp_path: Path, probe: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    image = probe_image(tmp_path / "img", probe, ["sleep", "600"], notify=False)
    nspod = Nspod(tmp_path / "data")
    assert (
        nspod("run", "--detach", "--name=enter-many", str(image), "--caps-retain=CAP_KILL").returncode == 0
    )
    try:
        with ThreadPoolExecutor(6) as pool:
            runs = list(
                pool.map(lambda _: nspod("enter", "enter-many", "--", "/probe", "report"), range(24))
            )
    finally:
        nspod("stop", "enter-many")
    failed = [r.stderr for r in runs if r.returncode != 0 or "capbnd 0000000000000020" not in r.stdout]
    assert failed == [], failed


def wait_for(nspod: Nspod, pod: str, app: str, path: str) -> subprocess.CompletedProcess[str]:
    """``cat PATH`` entered into APP, once the app has written it (its start is not its first line)."""
    import time

    deadline = time.monotonic() + 30
    while True:
        shown = nspod("enter", "--app", app, pod, "--", "/bin/cat", path)
        if shown.returncode == 0 or time.monotonic() > deadline:
            return shown
        time.sleep(0.2)


def test_enter_app_of_a_two_app_pod(tmp_path: Path, bb: Path) -> None:  # noqa: F811
    # issue #23 item 6: stage1 took "--app NAME" for the command, so no --app ever worked
    nspod = Nspod(tmp_path / "data")
    apps = []
    for name in ("one", "two"):
        shell = f"echo {name} >/who; sleep 600"
        apps += [str(bb), f"--name={name}", "--exec=/bin/sh", "--", "-c", shell, "---"]
    ran = nspod("run", "--detach", "--name=enter-two", *apps[:-1])
    assert ran.returncode == 0, ran.stderr
    try:
        for name in ("one", "two"):
            shown = wait_for(nspod, "enter-two", name, "/who")
            assert (shown.returncode, shown.stdout) == (0, f"{name}\n"), shown.stderr
        chosen = nspod("enter", "enter-two", "--", "/bin/true")
        assert chosen.returncode != 0 and "--app" in chosen.stderr, chosen  # two apps: say which
    finally:
        nspod("stop", "enter-two")


def test_enter_app_of_a_sandbox(tmp_path: Path, bb: Path) -> None:  # noqa: F811
    nspod = Nspod(tmp_path / "data")
    made = nspod("app", "sandbox", "--name=enter-box")
    assert made.returncode == 0, made.stderr
    try:
        added = nspod("app", "add", "enter-box", str(bb), "--name", "web", "--exec", "/bin/sh",
                      "--", "-c", "echo web >/who; sleep 600")  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert nspod("app", "start", "enter-box", "--app", "web").returncode == 0
        shown = wait_for(nspod, "enter-box", "web", "/who")
        assert (shown.returncode, shown.stdout) == (0, "web\n"), shown.stderr
    finally:
        nspod("stop", "enter-box")
