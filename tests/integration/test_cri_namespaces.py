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
