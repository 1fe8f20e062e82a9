"""A CRI container's masked paths and bidirectional mounts against a real systemd (issue #24): a
masked link is covered itself (its target, busybox, stays: the container runs), for the container
and for what ExecSync runs; a bidirectional mount of a privileged container shares the host's
peer group both ways, and is refused for a container not privileged or a host path not shared."""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stage0.host.mounts import mount_points
from tests.integration.test_cri import Cri, cri, wait_for  # noqa: F401 (cri: the fixture)

pytestmark = pytest.mark.systemd
MS_BIND, MS_REC, MS_PRIVATE, MS_SHARED, MNT_DETACH = 0x1000, 0x4000, 1 << 18, 1 << 20, 2
_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, flags: int) -> None:
    assert _libc.mount(source.encode(), target.encode(), None, flags, None) == 0, os.strerror(
        ctypes.get_errno()
    )


def sandbox(service: Cri, name: str, privileged: bool) -> tuple[str, str]:
    config = service.write(f"pod-{name}.json", {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "attempt": 0},
        "log_directory": str(service.work / "logs" / name),
        "linux": {"security_context": {"privileged": privileged}},
    })  # fmt: skip
    return service("runp", config).strip(), config


def container(service: Cri, pod: tuple[str, str], name: str, script: str, **more: object) -> str:
    config = service.write(f"ctr-{name}.json", {
        "metadata": {"name": name}, "image": {"image": service.image}, "log_path": f"{name}.log",
        "command": ["/bin/sh", "-c"], "args": [script], **more,
    })  # fmt: skip
    return service("create", pod[0], config, pod[1], check=False).strip()


def test_a_masked_link_is_covered_itself(cri: Cri) -> None:  # noqa: F811 (the fixture)
    pod = sandbox(cri, "masks", False)
    try:
        security = {"security_context": {"masked_paths": ["/bin/ls", "/missing/file"]}}
        ident = container(cri, pod, "masks", "ls -l /bin/ls; echo ready; sleep 600", linux=security)
        cri("start", ident)
        wait_for("the app's output", lambda: "ready" in cri("logs", ident))
        assert cri("logs", ident).startswith("c")  # /dev/null over the link, in the container
        assert cri("exec", "-s", ident, "/bin/sh", "-c", "ls -l /bin/ls").startswith("c")  # and its exec
        assert cri("exec", "-s", ident, "/bin/cat", "/bin/ls").strip() == ""
        assert int(cri("exec", "-s", ident, "/bin/sh", "-c", "cat /bin/busybox | wc -c")) > 100_000
    finally:
        cri("stopp", pod[0])
        cri("rmp", pod[0])


@pytest.fixture
def host_path(tmp_path: Path) -> Iterator[Path]:
    """critest's: a directory bound over itself and made rshared (and one made private beside it)."""
    mnt = tmp_path / "mnt"
    (mnt / "from-host").mkdir(parents=True)
    (tmp_path / "src").mkdir()
    (tmp_path / "src/flag").write_text("")
    _mount(str(mnt), str(mnt), MS_BIND | MS_REC)
    _mount("none", str(mnt), MS_SHARED | MS_REC)
    private = tmp_path / "private"
    private.mkdir()
    _mount(str(private), str(private), MS_BIND)
    _mount("none", str(private), MS_PRIVATE)
    yield mnt
    for point in (mnt / "from-host", mnt / "from-ctr", mnt, private):
        _libc.umount2(str(point).encode(), MNT_DETACH)


def test_a_bidirectional_mount_reaches_the_host_and_back(cri: Cri, host_path: Path) -> None:  # noqa: F811
    both = {"host_path": str(host_path), "container_path": str(host_path), "propagation": 2}
    plain = sandbox(cri, "plain", False)
    pod = sandbox(cri, "shares", True)
    try:
        refused = container(cri, plain, "plain", "sleep 600", mounts=[both])
        assert "InvalidArgument" in refused and "privileged" in refused, refused
        privileged = {"security_context": {"privileged": True}}
        unshared = {**both, "host_path": str(host_path.parent / "private"), "container_path": "/private"}
        refused = container(cri, pod, "unshared", "sleep 600", mounts=[unshared], linux=privileged)
        assert "FailedPrecondition" in refused and "shared" in refused, refused
        assert json.loads(cri("ps", "-a", "-o", "json"))["containers"] == []  # nothing half-made

        ident = container(cri, pod, "shares", "sleep 600", mounts=[both], linux=privileged)
        cri("start", ident)
        _mount(str(host_path.parent / "src"), str(host_path / "from-host"), MS_BIND)
        assert cri("exec", "-s", ident, "/bin/ls", str(host_path / "from-host")).split() == ["flag"]
        made = f"mkdir {host_path}/from-ctr && /bin/busybox mount --bind /bin {host_path}/from-ctr"
        cri("exec", "-s", ident, "/bin/sh", "-c", made)
        assert "busybox" in os.listdir(host_path / "from-ctr")  # the container's /bin, on the host
        status = json.loads(cri("inspect", ident))["status"]
        assert status["mounts"][0]["propagation"] == "PROPAGATION_BIDIRECTIONAL"
        # that mount alone: what the container mounts elsewhere stays its own
        cri(
            "exec",
            "-s",
            ident,
            "/bin/sh",
            "-c",
            "mkdir /elsewhere && /bin/busybox mount -t tmpfs x /elsewhere",
        )
        assert not [p for p in mount_points(Path("/proc/self/mountinfo").read_text()) if "elsewhere" in p]
    finally:
        for where in (plain, pod):
            cri("stopp", where[0])
            cri("rmp", where[0])
    # the pod's end unmounted nothing of the host's (an unmount of a peer's child would have)
    assert (host_path / "from-host/flag").exists()
