"""Dependencies point one way: stage1 never imports stage0; stage0 reaches stage1 only through the
contract (stage1.abi, standard library only) and its one executor module (stage0/host/executor.py);
other programs run only through the runner (stage0/host/runner.py) or an adapter."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted((REPO / "stage1").rglob("*.py")), ids=lambda p: p.name)
def test_stage1_never_imports_stage0(path: Path) -> None:
    assert not {m for m in imports(path) if m == "stage0" or m.startswith("stage0.")}


@pytest.mark.parametrize("path", sorted((REPO / "stage0").rglob("*.py")), ids=lambda p: p.name)
def test_stage0_uses_only_the_abi_and_the_executor(path: Path) -> None:
    used = {m for m in imports(path) if m.split(".")[0] == "stage1"}
    assert used <= {"stage1.abi"} or path == REPO / "stage0/host/executor.py", used


def test_the_abi_is_standard_library_only() -> None:
    used = {m.split(".")[0] for m in imports(REPO / "stage1/abi.py")}
    assert used <= set(sys.stdlib_module_names) | {"__future__"}, used - set(sys.stdlib_module_names)


def test_abi_exports() -> None:
    import stage1.abi

    assert set(stage1.abi.__all__) == {
        "ABI_VERSION",
        "APP_ROOT",
        "DEFAULT_PATH",
        "ENTRYPOINTS",
        "INTERFACE_VERSION",
        "MDS_PORT",
        "MDS_SOCKET",
        "NetworkSpec",
        "PortSpec",
        "SECCOMP_ALL",
        "SECCOMP_EMPTY",
        "SECCOMP_WILDCARDS",
        "USERNS_SIZE",
        "AppSpec",
        "Error",
        "ExitCode",
        "HealthSpec",
        "PodPaths",
        "PodSpec",
        "VolumeSpec",
        "own_unit",
        "signal_name",
        "unit_name",
    }


def test_every_entry_point_is_documented() -> None:
    from stage1.abi import ENTRYPOINTS, INTERFACE_VERSION

    text = (REPO / "stage1/ABI.md").read_text()
    assert f"interface version {INTERFACE_VERSION}" in text
    assert all(f"| `{verb}` |" in text for verb in ENTRYPOINTS)


# the command runner, the D-Bus adapter, the network adapter (ip, CNI plugins, nft) and the
# propagation adapter (mount_volumes.py --share-host: setns wants a single thread), and the health
# check's program in the pod (it runs systemd-run and systemctl there; stage1's modules are not in a pod)
RUNNERS = {"stage0/host/runner.py", "stage1/systemd.py", "stage1/network.py", "stage1/propagation.py"}
RUNNERS |= {"stage1/scripts/health.py"}
RUNNERS |= {"stage1/kvm/host.py"}  # the kvm flavor's: virtiofsd, machined's registration, a decompressor


@pytest.mark.parametrize(
    "path",
    sorted([*(REPO / "stage0").rglob("*.py"), *(REPO / "stage1").rglob("*.py")]),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_programs_run_only_through_the_runner(path: Path) -> None:
    relative = str(path.relative_to(REPO))
    assert "subprocess" not in imports(path) or relative in RUNNERS
    if relative.startswith("stage0/"):
        assert '"systemctl"' not in path.read_text(), (
            "stage0 reaches systemd over D-Bus (stage0/host/executor.py)"
        )


@pytest.mark.parametrize(
    "path",
    sorted([*(REPO / "stage0").rglob("*.py"), *(REPO / "stage1").rglob("*.py")]),
    ids=lambda p: p.name,
)
def test_only_the_adapter_touches_dbus(path: Path) -> None:
    dbus = {m for m in imports(path) if m.split(".")[0] in ("pystemd", "dbus_fast", "dbus_next")}
    # pystemd's adapter (stage1, synchronous) and dbus-fast's (stage0's metadata service, asyncio)
    adapters = {"pystemd": "stage1/systemd.py", "dbus_fast": "stage0/host/machined.py"}
    relative = str(path.relative_to(REPO))
    assert all(adapters.get(m.split(".")[0]) == relative for m in dbus), (relative, dbus)


def test_every_package_is_listed_in_pyproject() -> None:
    """The flat layout lists packages by hand; a forgotten one works from the checkout but not installed."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        str(p.parent.relative_to(REPO)).replace("/", ".")
        for top in ("stage0", "stage1")
        for p in (REPO / top).rglob("__init__.py")
    }
    assert listed == found


def test_signal_handlers_live_in_one_place() -> None:
    """A handler only sets a flag (stage1/run.py's foreground loop acts on it, the pool keeper's
    accept loop on SIGTERM), or, for a pooled run, passes the signal on to the keeper that runs
    the pod; elsewhere signals keep their own actions (a stop while pod@ prepares simply ends it,
    see stage0/cli/podfiles.py)."""
    found = [
        str(p.relative_to(REPO))
        for top in ("stage0", "stage1")
        for p in (REPO / top).rglob("*.py")
        if "signal.signal(" in p.read_text()
    ]
    assert sorted(found) == [
        "stage0/cri/server.py",
        "stage0/pool/client.py",
        "stage0/pool/keeper.py",
        "stage1/fly/pod.py",  # the fly supervisor (a flag, as run.py's)
        "stage1/run.py",
        "stage1/scripts/cri_log.py",
    ]
    # a CRI container's log writer, in the pod: a stop only starts its last drain
    writer = (REPO / "stage1/scripts/cri_log.py").read_text()
    assert "signal.signal(signal.SIGTERM, lambda *_: stopping.append(time.monotonic()))" in writer
    # the CRI server: a stop only ends its wait; it then stops serving (grpc's own graceful stop)
    server = (REPO / "stage0/cri/server.py").read_text()
    assert "signal.signal(signum, lambda *_: stop.set())" in server
    keeper = (REPO / "stage0/pool/keeper.py").read_text()
    assert "signal.signal(signal.SIGTERM, lambda signum, frame: self.stopping.set())" in keeper
    client = (REPO / "stage0/pool/client.py").read_text()
    forward = client[client.index("def handler(") : client.index("return handler")]
    assert forward.strip().endswith('conn.send(json.dumps({"signal": signum}).encode())'), forward
    text = (REPO / "stage1/run.py").read_text()
    handler = text[text.index("def on_signal(") : text.index("if not detach:")]
    assert handler.strip().endswith("asked.add(signum)"), handler
