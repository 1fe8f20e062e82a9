"""A CRI hostPID sandbox (NamespaceOption pid=NODE) against a real systemd, driven by crictl: its
containers are host units (stage1/fly) that see the host's processes and each other's, in the
sandbox's network namespace; exec runs there too, their output reaches the CRI log through FIFOs
(a program can open /dev/stderr), a kill -9 of ``nspod cri`` loses nothing, and nothing is left
once the sandbox is removed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.harness.terminal import in_terminal
from tests.integration.test_cri import CRICTL, SOCKET, Cri, _nothing_left, cri, sh, wait_for

pytestmark = pytest.mark.systemd
__all__ = ["cri"]  # the module's fixture, shared
NODE = 2  # runtimeapi.NamespaceMode_NODE


def host_pid_sandbox(cri: Cri, name: str) -> str:
    config = json.loads(Path(cri.sandbox_config(name)).read_text())
    config["linux"] = {"security_context": {"namespace_options": {"pid": NODE}}}
    return cri.write(f"pod-{name}-hostpid.json", config)


def container(cri: Cri, name: str, script: str) -> str:
    config = json.loads(Path(cri.container_config(name, script)).read_text())
    config["linux"] = {"security_context": {"namespace_options": {"pid": NODE}}}
    return cri.write(f"ctr-{name}-hostpid.json", config)


def pid_of(cri: Cri, ctr: str) -> int:
    """The container's main PID as its verbose status says (crictl parses the info it can)."""
    shown = json.loads(cri("inspect", "-o", "json", ctr))
    info = shown.get("info", {})
    info = info.get("info", info) if isinstance(info, dict) else info
    info = json.loads(info) if isinstance(info, str) else info
    assert isinstance(info, dict) and info.get("pid"), shown
    return int(info["pid"])


def unit_processes(unit: str) -> list[str]:
    """The processes in a host unit's control group (none once it is gone)."""
    group = sh("systemctl", "show", "-p", "ControlGroup", "--value", unit).strip()
    procs = Path(f"/sys/fs/cgroup{group}/cgroup.procs")
    return procs.read_text().split() if group and procs.exists() else []


def test_a_host_pid_sandbox(cri: Cri) -> None:
    sandbox = host_pid_sandbox(cri, "hostpid")
    pod = cri("runp", sandbox).strip()
    status = json.loads(cri("inspectp", pod))["status"]
    assert status["state"] == "SANDBOX_READY" and status["linux"]["namespaces"]["options"]["pid"] == "NODE"
    assert status["network"]["ip"]  # its own network namespace, from CNI, as every sandbox's

    script = 'echo "$GREETING out"; echo err > /dev/stderr; exec sleep 3600'
    sleeper = cri("create", pod, container(cri, "sleeper", script), sandbox).strip()
    cri("start", sleeper)
    wait_for(
        "running", lambda: json.loads(cri("inspect", sleeper))["status"]["state"] == "CONTAINER_RUNNING"
    )
    unit = f"nspod-fly-{pod}-"
    assert unit in sh("systemctl", "list-units", "--no-legend", "--plain", "nspod-fly-*")
    sleeping = pid_of(cri, sleeper)

    other = cri("create", pod, container(cri, "other", "exec sleep 3600"), sandbox).strip()
    cri("start", other)
    # the host's processes, this test's among them, and the other container's sleep
    seen = cri("exec", "-s", other, "/bin/sh", "-c", f"cat /proc/{os.getpid()}/comm /proc/{sleeping}/comm")
    assert seen.split() == [Path(f"/proc/{os.getpid()}/comm").read_text().strip(), "sleep"], seen
    assert cri("exec", "-s", other, "/bin/sh", "-c", "echo $GREETING-exec").strip() == "hi-exec"
    # in the sandbox's network namespace, not the host's
    own = cri("exec", "-s", other, "/bin/cat", "/proc/self/net/dev")
    assert "eth0" in own and own != Path("/proc/self/net/dev").read_text()
    # the sandbox's IPC namespace (its pod's), shared by its containers, not the host's
    leader = sh("machinectl", "show", f"nspod-{pod}", "-p", "Leader", "--value").strip()
    ipc = [
        cri("exec", "-s", c, "/bin/sh", "-c", "readlink /proc/self/ns/ipc").strip() for c in (sleeper, other)
    ]
    assert ipc == [os.readlink(f"/proc/{leader}/ns/ipc")] * 2 != [os.readlink("/proc/self/ns/ipc")] * 2, ipc
    # apart from the host's filesystem: its root is the image's
    where = "test -e /usr/bin/systemctl -o -e /proc/1/root/usr/bin/systemctl && echo host || echo image"
    assert cri("exec", "-s", other, "/bin/sh", "-c", where).strip() == "image"
    wait_for("logs", lambda: "err" in cri("logs", sleeper, check=False))  # (crictl: stderr's to its own)
    logged = cri("logs", sleeper, check=False)
    assert "hi out" in logged and "err" in logged

    # a command on a terminal (systemd-run --pty on the host), and one past its timeout, killed
    tty = in_terminal([str(CRICTL), "-r", f"unix://{SOCKET}", "-t", "60s", "exec", "-i", "-t", other,
                       "sh", "-c", "test -t 0 && echo on-a-tty"])[0]  # fmt: skip
    assert b"on-a-tty" in tty, tty
    late = cri("exec", "--sync", "--timeout", "2", other, "/bin/sleep", "30", check=False)
    assert "DeadlineExceeded" in late or "timed out" in late or "timeout" in late, late
    wait_for(
        "the exec's end",
        lambda: "nspod-exec" not in sh("systemctl", "list-units", "--no-legend", "nspod-exec-*"),
    )

    # its usage from its host unit's cgroup, its limits set on that unit
    stats = json.loads(cri("stats", "-o", "json", "--id", sleeper))["stats"]
    assert int(stats[0]["memory"]["workingSetBytes"]["value"]) > 0, stats
    cri("update", "--memory", "200000000", other)
    listed = sh("systemctl", "list-units", "--no-legend", "--plain", f"{unit}*other*").split()
    app_unit = next(u for u in listed if u.endswith(".service") and not u.endswith("-log.service"))
    assert sh("systemctl", "show", "-p", "MemoryMax", "--value", app_unit).strip() == "200000000"

    # its writer killed mid-output: the host's systemd holds the FIFOs, a new writer reads on
    talk = "i=0; while [ $i -lt 40 ]; do echo line-$i; i=$((i+1)); sleep 0.05; done; exec sleep 3600"
    talker = cri("create", pod, container(cri, "talker", talk), sandbox).strip()
    cri("start", talker)
    wait_for("output", lambda: "line-5" in cri("logs", talker))
    writer = next(
        u
        for u in sh(
            "systemctl", "list-units", "--no-legend", "--plain", f"{unit}*talker*-log.service"
        ).split()
        if u.endswith(".service")
    )
    killed = sh("systemctl", "show", "-p", "MainPID", "--value", writer).strip()
    assert int(killed) > 0, writer  # (0 would be this test's own process group)
    os.kill(int(killed), 9)
    wait_for("every line", lambda: "line-39" in cri("logs", talker))
    assert [line for line in cri("logs", talker).split() if line.startswith("line-")] == [
        f"line-{i}" for i in range(40)
    ]
    cri("rm", "-f", talker)
    # one whose main process ends by itself, leaving a child: exited, its code, the child gone
    leaver = cri(
        "create", pod, container(cri, "leaver", "sleep 3600 & echo $! > /child; exit 0"), sandbox
    ).strip()
    cri("start", leaver)
    wait_for("its end", lambda: json.loads(cri("inspect", leaver))["status"]["state"] == "CONTAINER_EXITED")
    assert json.loads(cri("inspect", leaver))["status"]["exitCode"] == 0
    listed = sh("systemctl", "list-units", "--all", "--no-legend", "--plain", f"{unit}*leaver*").split()
    leaver_unit = next(u for u in listed if u.endswith(".service") and not u.endswith("-log.service"))
    wait_for("no process left", lambda: not unit_processes(leaver_unit))
    cri("rm", leaver)

    # the service killed mid-life: restarted by its socket, it finds the sandbox and its containers
    main_pid = sh("systemctl", "show", "-p", "MainPID", "--value", "nspod-cri.service").strip()
    os.kill(int(main_pid), 9)
    wait_for("the kill", lambda: sh("systemctl", "is-active", "nspod-cri.service").strip() != "active")
    assert json.loads(cri("inspectp", pod))["status"]["state"] == "SANDBOX_READY"
    states = {c["id"]: c["state"] for c in json.loads(cri("ps", "-a", "-o", "json"))["containers"]}
    assert states == {sleeper: "CONTAINER_RUNNING", other: "CONTAINER_RUNNING"}
    assert cri("exec", "-s", sleeper, "/bin/sh", "-c", "echo again").strip() == "again"

    cri("stop", "--timeout", "0", sleeper)
    done = json.loads(cri("inspect", sleeper))["status"]
    assert done["state"] == "CONTAINER_EXITED" and done["exitCode"] == 137, done
    cri("rm", sleeper)
    cri("stopp", pod)  # the pod's stop stops its host units (BindsTo=)
    assert json.loads(cri("inspect", other))["status"]["state"] == "CONTAINER_EXITED"
    cri("rmp", pod)
    assert json.loads(cri("pods", "-o", "json"))["items"] == []
    assert unit not in sh("systemctl", "list-units", "--all", "--no-legend", "--plain", "nspod-fly-*")
    _nothing_left()


def test_a_default_sandbox_sees_no_host_process_and_cannot_ask_for_host_pid(cri: Cri) -> None:
    pod = cri("runp", cri.sandbox_config("nohostpid")).strip()
    try:
        sneaky = container(cri, "sneaky", "sleep 1")
        answer = cri("create", pod, sneaky, cri.sandbox_config("nohostpid"), check=False)
        assert "InvalidArgument" in answer and "hostPID" in answer, answer
        plain = cri(
            "create", pod, cri.container_config("plain", "exec sleep 3600"), cri.sandbox_config("nohostpid")
        )
        cri("start", plain.strip())
        mine = f"/proc/{os.getpid()}/cmdline"
        seen = cri("exec", "-s", plain.strip(), "/bin/sh", "-c", f"cat {mine} 2>&1; ls /proc", check=False)
        assert "pytest" not in seen and str(os.getpid()) not in seen.split(), (
            seen
        )  # (tests/attacks/test_hostpid.py)
    finally:
        cri("stopp", pod)
        cri("rmp", pod)
    _nothing_left()
