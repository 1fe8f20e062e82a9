"""The CRI's namespace options against a real systemd, through crictl: a sandbox asking for the
node's IPC namespace sees the host's System V segments, every other one sees its own alone
(stage1/namespaces.py); a container asking for a PID namespace of its own is its PID 1, and a
command exec'd into it lands there too (stage1/pidns.py)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cri import Cri, _nothing_left, cri, wait_for  # noqa: F401 (the fixture)

pytestmark = pytest.mark.systemd
NODE, CONTAINER = 2, 1  # the CRI's NamespaceMode


def shm_ids(text: str) -> set[str]:
    """The segment IDs of a /proc/sysvipc/shm."""
    return {line.split()[1] for line in text.splitlines()[1:] if line.split()}


@pytest.fixture
def host_segment() -> Iterator[str]:
    """A System V shared memory segment of the host's (ipcmk's), its ID."""
    made = subprocess.run(["ipcmk", "-M", "4096"], capture_output=True, text=True, check=True)
    ident = made.stdout.strip().rsplit(" ", 1)[-1]
    yield ident
    subprocess.run(["ipcrm", "-m", ident], check=False)


def sandbox(cri: Cri, name: str, **namespaces: int) -> str:  # noqa: F811
    config = json.loads(Path(cri.sandbox_config(name)).read_text())
    config["linux"] = {"security_context": {"namespace_options": namespaces}}
    return cri.write(f"pod-{name}-ns.json", config)


def container(cri: Cri, name: str, script: str, **namespaces: int) -> str:  # noqa: F811
    config: dict[str, Any] = json.loads(Path(cri.container_config(name, script)).read_text())
    config["linux"] = {"security_context": {"namespace_options": namespaces}}
    return cri.write(f"ctr-{name}-ns.json", config)


def running(cri: Cri, pod_config: str, ctr_config: str) -> tuple[str, str]:  # noqa: F811
    pod = cri("runp", pod_config).strip()
    ctr = cri("create", pod, ctr_config, pod_config).strip()
    cri("start", ctr)
    wait_for("running", lambda: json.loads(cri("inspect", ctr))["status"]["state"] == "CONTAINER_RUNNING")
    return pod, ctr


def gone(cri: Cri, *pods: str) -> None:  # noqa: F811
    for pod in pods:
        cri("stopp", pod)
        cri("rmp", pod)


def test_only_a_host_ipc_sandbox_sees_the_hosts_segments(cri: Cri, host_segment: str) -> None:  # noqa: F811
    host_config = sandbox(cri, "hostipc", ipc=NODE)
    host, host_ctr = running(cri, host_config, container(cri, "hostipc", "sleep 600", ipc=NODE))
    own_config = sandbox(cri, "ownipc")
    own, own_ctr = running(cri, own_config, container(cri, "ownipc", "sleep 600"))
    try:
        assert host_segment in shm_ids(cri("exec", "-s", host_ctr, "cat", "/proc/sysvipc/shm"))
        assert host_segment not in shm_ids(cri("exec", "-s", own_ctr, "cat", "/proc/sysvipc/shm"))
        status = json.loads(cri("inspectp", host))["status"]["linux"]
        assert status["namespaces"]["options"]["ipc"] == "NODE"
    finally:
        gone(cri, host, own)
    _nothing_left()


def test_a_host_ipc_container_needs_a_host_ipc_sandbox(cri: Cri) -> None:  # noqa: F811
    pod_config = sandbox(cri, "ipcmismatch")
    pod = cri("runp", pod_config).strip()
    try:
        answer = cri("create", pod, container(cri, "x", "sleep 1", ipc=NODE), pod_config, check=False)
        assert "InvalidArgument" in answer, answer
    finally:
        gone(cri, pod)


def status_field(cri: Cri, ctr: str, pid: str, field: str) -> str:  # noqa: F811
    script = f'while read -r k v; do [ "$k" = {field}: ] && echo "$v"; done < /proc/{pid}/status; true'
    return cri("exec", "-s", ctr, "sh", "-c", script).strip()


def cmdlines(cri: Cri, ctr: str) -> str:  # noqa: F811
    """Every process's command line the container sees, NULs as spaces, one a line."""
    script = 'for p in /proc/[0-9]*; do echo "${p#/proc/}: $(cat $p/cmdline)"; done'
    return cri("exec", "-s", ctr, "sh", "-c", script).replace("\0", " ")


def test_a_container_with_a_pid_namespace_of_its_own_is_its_pid_1(cri: Cri) -> None:  # noqa: F811
    pod_config = sandbox(cri, "ownpid", pid=CONTAINER)
    pod, first = running(cri, pod_config, container(cri, "first", "sleep 601", pid=CONTAINER))
    second = cri("create", pod, container(cri, "second", "sleep 602", pid=CONTAINER), pod_config).strip()
    cri("start", second)
    wait_for("second", lambda: json.loads(cri("inspect", second))["status"]["state"] == "CONTAINER_RUNNING")
    try:
        assert "601" in cri("exec", "-s", first, "cat", "/proc/1/cmdline").replace("\0", " ")
        assert "602" in cri("exec", "-s", second, "cat", "/proc/1/cmdline").replace("\0", " ")
        seen = cmdlines(cri, first)
        # its own processes alone: not the other container's, not the pod's systemd or log writers
        assert "602" not in seen and "systemd" not in seen and "cri-log" not in seen, seen
        assert len(seen.splitlines()) <= 4, seen  # sleep, and the exec's sh and its cat
        # the app's confinement as before: no CAP_SYS_ADMIN (bit 21) or CAP_SETPCAP beyond
        # nspod's default set, the kernel's paths read-only and hidden under the fresh /proc
        default_set = "00000000a80425fb"
        assert status_field(cri, first, "1", "CapBnd") == default_set
        assert status_field(cri, first, "self", "CapEff") == default_set
        assert status_field(cri, first, "self", "NoNewPrivs") == status_field(cri, first, "1", "NoNewPrivs")
        wrote = cri("exec", "-s", first, "sh", "-c", "echo 1 > /proc/sys/kernel/ns_last_pid", check=False)
        assert "Read-only" in wrote, wrote
        assert cri("exec", "-s", first, "cat", "/proc/kallsyms").strip() == ""
        assert cri("exec", "-s", first, "ls", "/proc/acpi").strip() == ""
    finally:
        gone(cri, pod)
    _nothing_left()


def test_a_container_in_the_pods_pid_namespace_sees_the_pod(cri: Cri) -> None:  # noqa: F811
    pod_config = sandbox(cri, "podpid")
    pod, ctr = running(cri, pod_config, container(cri, "podpid", "sleep 603"))
    try:
        assert "systemd" in cri("exec", "-s", ctr, "cat", "/proc/1/cmdline")
        assert "603" in cmdlines(cri, ctr)
    finally:
        gone(cri, pod)


def test_a_read_only_container_of_its_own_pid_namespace_runs_too(cri: Cri) -> None:  # noqa: F811
    pod_config = sandbox(cri, "ownpid-ro", pid=CONTAINER)
    config: dict[str, Any] = json.loads(Path(container(cri, "ro", "sleep 604", pid=CONTAINER)).read_text())
    config["linux"]["security_context"] |= {"readonly_rootfs": True, "run_as_user": {"value": 1000}}
    pod, ctr = running(cri, pod_config, cri.write("ctr-ro-own.json", config))
    try:
        assert "604" in cri("exec", "-s", ctr, "cat", "/proc/1/cmdline")
        assert "Read-only" in cri("exec", "-s", ctr, "sh", "-c", "echo > /x", check=False)
        assert status_field(cri, ctr, "self", "CapEff") == "0000000000000000"
    finally:
        gone(cri, pod)
