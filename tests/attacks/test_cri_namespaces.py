"""The CRI's namespace options opened up only where asked (nsopts): a container of a default
sandbox reaches no System V segment of the host's and sees or signals no process of the host's; a
container with a PID namespace of its own sees and kills none of its sandbox's other containers;
and nothing gets it out of that namespace by its /proc (a fresh procfs, unmounting /proc, the new
mount API, unshare, setns), nor makes any namespace that nspod-pidns's widened unit allowed it:
programs/nsreach.c and programs/userns.c, run as a command exec'd into the container (which joins
its namespace), as root and as user 1000, under the CRI's RuntimeDefault seccomp profile."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.attacks.test_namespaces import tries
from tests.harness.registry import Layout
from tests.integration.test_cri import Cri, cri, wait_for  # noqa: F401 (the fixture)

pytestmark = pytest.mark.systemd
CONTAINER = 1  # the CRI's NamespaceMode
RUNTIME_DEFAULT = {"profile_type": 0}


def pushed(cri: Cri, tmp: Path, name: str, applets: tuple[str, ...], shape: Callable[[Path], None]) -> str:  # noqa: F811
    """A busybox image with ``applets``, its root shaped by ``shape``, in the fixture's registry
    and nspod's store, as ``name``."""
    layout = Layout(tmp)
    layout.busybox("base", applets=applets)
    bundle = layout.dir / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout.path}:base", str(bundle)], check=True)
    shape(bundle / "rootfs")
    subprocess.run(["umoci", "repack", "--image", f"{layout.path}:attack", str(bundle)], check=True)
    layout.config("attack", "--config.cmd", "/bin/sh", "--config.env", "PATH=/bin")
    ref = f"{cri.image.split('/')[0]}/{name}:latest"
    layout.push("attack", ref)
    cri.nspod("--insecure-options=image,http", "fetch", f"docker://{ref}")
    return ref


@pytest.fixture(scope="module")
def image(cri: Cri, programs: Mapping[str, Path], tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: F811
    """busybox with /bin/nsreach and /bin/userns."""

    def tools(root: Path) -> None:
        for name in ("nsreach", "userns"):
            shutil.copy(programs[name], root / "bin" / name)

    return pushed(
        cri, tmp_path_factory.mktemp("nsreach-image"), "nsreach", ("sh", "cat", "sleep", "ls"), tools
    )


def sandbox(cri: Cri, name: str, **namespaces: int) -> str:  # noqa: F811
    config = json.loads(Path(cri.sandbox_config(name)).read_text())
    config["linux"] = {"security_context": {"namespace_options": namespaces}}
    return cri.write(f"pod-{name}-attack.json", config)


def container(cri: Cri, image: str, name: str, script: str, user: int = 0, **namespaces: int) -> str:  # noqa: F811
    security: dict[str, Any] = {"namespace_options": namespaces, "seccomp": RUNTIME_DEFAULT}
    if user:
        security["run_as_user"] = {"value": user}
    config = {
        "metadata": {"name": name}, "image": {"image": image}, "command": ["/bin/sh", "-c", script],
        "linux": {"security_context": security},
    }  # fmt: skip
    return cri.write(f"ctr-{name}-attack.json", config)


def started(cri: Cri, pod: str, pod_config: str, ctr_config: str) -> str:  # noqa: F811
    ctr = cri("create", pod, ctr_config, pod_config).strip()
    cri("start", ctr)
    wait_for("running", lambda: json.loads(cri("inspect", ctr))["status"]["state"] == "CONTAINER_RUNNING")
    return ctr


def reach(cri: Cri, ctr: str, *argv: str) -> dict[str, str]:  # noqa: F811
    out = cri("exec", "-s", ctr, *argv, check=False)
    seen = tries(out)
    assert seen.get("done") in ("ok", "0"), out
    return seen


def escaped(seen: dict[str, str]) -> list[str]:
    return sorted(t for t, r in seen.items() if r == "ESCAPED")


@pytest.fixture
def host_segment() -> Iterator[str]:
    made = subprocess.run(["ipcmk", "-M", "4096"], capture_output=True, text=True, check=True)
    ident = made.stdout.strip().rsplit(" ", 1)[-1]
    yield ident
    subprocess.run(["ipcrm", "-m", ident], check=False)


@pytest.fixture
def host_process() -> Iterator[int]:
    marker = subprocess.Popen(["sleep", "98765"])
    yield marker.pid
    marker.kill()
    marker.wait()


def test_a_default_sandbox_reaches_no_host_segment_nor_host_process(
    cri: Cri,  # noqa: F811
    image: str,
    host_segment: str,
    host_process: int,
) -> None:
    pod_config = sandbox(cri, "defaultns")
    pod = cri("runp", pod_config).strip()
    try:
        ctr = started(cri, pod, pod_config, container(cri, image, "victim-less", "sleep 600"))
        ipc = reach(cri, ctr, "/bin/nsreach", "ipc", host_segment)
        assert escaped(ipc) == [] and ipc["shm-stat"] == "EINVAL", ipc
        pid = reach(cri, ctr, "/bin/nsreach", "pid", str(host_process), "98765")
        assert escaped(pid) == [] and pid["see"] == "NONE", pid
    finally:
        cri("stopp", pod)
        cri("rmp", pod)
    assert subprocess.run(["kill", "-0", str(host_process)], check=False).returncode == 0


def pod_pid(host_pid: int) -> str:
    """The PID the pod's namespace gives a process of the host's (its NSpid's second)."""
    for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return line.split()[2]
    raise AssertionError(f"no NSpid for {host_pid}")


def host_pid_of(marker: str) -> int:
    found = subprocess.run(["pgrep", "-f", f"^{marker}$"], capture_output=True, text=True).stdout.split()
    assert len(found) == 1, found
    return int(found[0])


@pytest.mark.parametrize("user", [0, 1000])
def test_a_container_of_its_own_pid_namespace_reaches_no_other_and_stays_in_its_own(
    cri: Cri,  # noqa: F811
    image: str,
    user: int,
) -> None:
    pod_config = sandbox(cri, f"ownpid-attack-{user}", pid=CONTAINER)
    pod = cri("runp", pod_config).strip()
    try:
        marker = f"sleep 9876{user % 10}"
        started(cri, pod, pod_config, container(cri, image, "victim", marker, pid=CONTAINER))
        attacker = started(
            cri, pod, pod_config, container(cri, image, "attacker", "sleep 600", user, pid=CONTAINER)
        )
        victim = host_pid_of(marker)
        pid = reach(cri, attacker, "/bin/nsreach", "pid", pod_pid(victim), marker)
        assert escaped(pid) == [] and pid["see"] == "NONE", pid
        assert subprocess.run(["kill", "-0", str(victim)], check=False).returncode == 0  # alive
        proc = reach(cri, attacker, "/bin/nsreach", "proc")
        assert escaped(proc) == [] and proc["pod-systemd"] == "NONE", proc
        made = reach(cri, attacker, "/bin/userns")
        assert len(made) >= 49 and escaped(made) == [], made
    finally:
        cri("stopp", pod)
        cri("rmp", pod)


@pytest.fixture(scope="module")
def proc_link_image(cri: Cri, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: F811
    """busybox whose /proc is a link (proc -> .p): systemd mounts proc and its guards where it
    leads, so a helper that mounted a fresh proc on the link would hand the app an unguarded one."""

    def linked(root: Path) -> None:
        shutil.rmtree(root / "proc", ignore_errors=True)
        (root / ".p").mkdir()
        (root / "proc").symlink_to(".p")

    return pushed(
        cri, tmp_path_factory.mktemp("proclink-image"), "proclink", ("sh", "echo", "sleep"), linked
    )


def test_an_image_whose_proc_is_a_link_gets_no_pid_namespace_of_its_own(
    cri: Cri,  # noqa: F811
    proc_link_image: str,
) -> None:
    """nspod-pidns refuses (the container ends at once) rather than mount proc on the link."""
    pod_config = sandbox(cri, "proclink-attack", pid=CONTAINER)
    pod = cri("runp", pod_config).strip()
    try:
        config = container(cri, proc_link_image, "proclink", "echo ESCAPED; sleep 600", pid=CONTAINER)
        ctr = cri("create", pod, config, pod_config).strip()
        cri("start", ctr, check=False)

        def state() -> dict[str, Any]:
            status: dict[str, Any] = json.loads(cri("inspect", ctr))["status"]
            return status

        wait_for("the container's end", lambda: state()["state"] == "CONTAINER_EXITED")
        assert state()["exitCode"] != 0, state()
    finally:
        cri("stopp", pod)
        cri("rmp", pod)
