"""A fly app's host units (stage1/hostplan.py): golden systemd-run command lines, and what the
profile they share with a pod's app must hold (the CRI's hostPID sandboxes)."""

from __future__ import annotations

import pytest

from stage1 import hostplan as plan
from stage1.abi import AppSpec, PodSpec
from stage1.app_unit import profile
from stage1.hostapps import exit_code
from tests.conftest import assert_golden

APP = AppSpec(
    name="web",
    rootfs="/var/lib/nspod/trees/x/rootfs",
    exec=("/usr/sbin/nginx", "-g", "daemon off;"),
    env=(("RATE", "100%"),),
    user=1000,
    group=1000,
    masked_paths=("/secret",),
    read_only_rootfs=True,
    mounts=(("data", "/data", False),),
    log_path="/var/log/pods/x/web/0.log",
    no_new_privileges=True,
)
SPEC = PodSpec(
    uuid="0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0",
    machine="sandbox",
    hostname="sandbox",
    apps=(APP,),
    sandbox=True,
    host_pid=True,
    networks=(),
)
POD = "/var/lib/nspod/pods/run/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0"
PLACE = plan.Place(
    root=f"{POD}/overlay/web/root",
    etc=f"{POD}/stage1/rootfs/nspod/etc",
    stdio=f"{POD}/overlay/web/stdio",
    exit=f"{POD}/status/web.fly",
    pod_unit="nspod-sandbox.service",
    leader=4242,
    host_network=False,
)
VOLUMES = (("/srv/data", "/data", False),)


def test_app_unit_golden() -> None:
    argv = plan.app_argv(SPEC, APP, PLACE, VOLUMES, ("/proc/kcore",))
    assert_golden("fly-app-argv.txt", "\n".join(argv) + "\n")


def test_writer_golden() -> None:
    argv = plan.writer_argv(SPEC, APP, PLACE, "/usr/lib/nspod/stage1/scripts/cri_log.py")
    assert_golden("fly-writer-argv.txt", "\n".join(argv) + "\n")


@pytest.mark.parametrize("tty", [False, True])
def test_exec_golden(tty: bool) -> None:
    argv = plan.exec_argv(
        SPEC,
        APP,
        PLACE,
        VOLUMES,
        ("/proc/kcore",),
        ["pidof", "nginx"],
        tty=tty,
        term="xterm",
        unit="x.service",
    )
    assert_golden(f"fly-exec-argv-{'tty' if tty else 'pipe'}.txt", "\n".join(argv) + "\n")


def test_the_unit_and_an_exec_share_the_pods_app_profile_with_the_hosts_paths() -> None:
    """The confinement is the one a pod's app gets, only its root and /etc files are host paths."""
    inside = profile(APP, ("/proc/kcore",))
    shared = plan.settings(SPEC, APP, PLACE, VOLUMES, ("/proc/kcore",))
    keys = {k for k, _ in inside} - {"RootDirectory", "InaccessiblePaths", "ReadOnlyPaths", "ReadWritePaths"}
    assert {(k, v) for k, v in inside if k in keys} <= set(shared)
    values = dict(shared)
    assert values["RootDirectory"] == PLACE.root
    assert values["NoNewPrivileges"] == "yes" and values["ProtectSystem"] == "strict"
    assert f"{PLACE.root}/secret" in values["InaccessiblePaths"]
    assert values["NetworkNamespacePath"] == "/proc/4242/ns/net"
    assert values["IPCNamespacePath"] == "/proc/4242/ns/ipc" and values["PrivateIPC"] == "yes"
    assert values["BindPaths"] == "/srv/data:/data"
    assert "SystemCallFilter" in values and "CapabilityBoundingSet" in values


def test_a_host_network_sandbox_joins_no_network_namespace() -> None:
    from dataclasses import replace

    values = dict(plan.settings(SPEC, APP, replace(PLACE, host_network=True), (), ()))
    assert "NetworkNamespacePath" not in values and "IPCNamespacePath" in values


def test_stdout_and_stderr_are_fifos_to_the_writer_and_the_unit_outlives_its_process() -> None:
    argv = plan.app_argv(SPEC, APP, PLACE, (), ())
    assert f"--property=StandardOutput=file:{PLACE.stdio}/web.out" in argv
    assert f"--property=Requires={plan.writer_name(SPEC, 'web')}.socket" in argv
    assert f"--property=BindsTo={PLACE.pod_unit}" in argv
    # kept once its process ended, for its exit status to be read (a failed unit is kept anyway)
    assert "--property=RemainAfterExit=yes" in argv and "--collect" not in argv


@pytest.mark.parametrize(
    ("text", "code", "signal"),
    [("exited 0\n", 0, None), ("exited 3", 3, None), ("killed TERM", 143, "SIGTERM"),
     ("killed 9", 137, "SIGKILL"), ("dumped SEGV", 139, "SIGSEGV"), ("killed BOGUS", 255, None),
     (None, None, None), ("", None, None)],
)  # fmt: skip
def test_recorded_exits(text: str | None, code: int | None, signal: str | None) -> None:
    assert exit_code(text) == (code, signal)
