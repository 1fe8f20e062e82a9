"""Test layers: pure tests run anywhere; ``systemd`` tests need a real systemd as PID 1 (``make test``
runs the whole session inside a test host, see tests/harness/in-testhost.sh); ``oracle`` tests
need the appc spec authors' actool, built on first use by tests/harness/build-appc-oracles.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# as `nspod cri` runs (stage0/cri/__init__.py): gRPC's fork handlers break sd-bus's connection to
# a pod's bus, and a test module that imports grpc before stage0.cri would otherwise have them
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

REPO = Path(__file__).resolve().parent.parent
ORACLES = Path(os.environ.get("NSPOD_ORACLES", "/var/cache/nspod-tests/appc"))
# Under `make test` a missing prerequisite is a failure, not a skip.
STRICT = os.environ.get("NSPOD_TEST_STRICT") == "1"


def tool(name: str) -> str:
    """The path of a program a test needs: missing, a skip — or, under `make test`, a failure."""
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        if STRICT:
            pytest.fail(f"{name} is not installed")
        pytest.skip(f"{name} is not installed")
    return path


def systemd_is_init() -> bool:
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if systemd_is_init() or STRICT:  # strict: let them run and fail loudly
        return
    reason = "needs systemd as PID 1 (run 'make test', which boots a test host)"
    for item in items:
        if "systemd" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


def nspod_cmd() -> list[str]:
    """The nspod under test: this checkout, run by the test interpreter."""
    return [sys.executable, "-m", "stage0"]


def run_nspod(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [*nspod_cmd(), *args], capture_output=True, text=True, check=False, env=env, timeout=120, input=stdin
    )


@pytest.fixture(scope="session")
def actool() -> Path:
    tool = ORACLES / "bin" / "actool"
    result = subprocess.run(
        [str(REPO / "tests/harness/build-appc-oracles.sh"), str(ORACLES)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0 or not tool.exists():
        if STRICT:
            pytest.fail(f"cannot build actool: {result.stderr[-2000:]}")
        pytest.skip("actool not available (needs Debian's golang-github-appc-spec-dev)")
    return tool


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[Path]:
    """A small valid image layout: busybox-free, a few files, a symlink, a hard link."""
    root = tmp_path / "layout"
    (root / "rootfs/bin").mkdir(parents=True)
    (root / "rootfs/etc").mkdir()
    (root / "rootfs/etc/hostname").write_text("pod\n")
    (root / "rootfs/bin/hello").write_text("#!/bin/sh\necho hello\n")
    (root / "rootfs/bin/hello").chmod(0o755)
    os.link(root / "rootfs/bin/hello", root / "rootfs/bin/hello-again")
    (root / "rootfs/bin/greet").symlink_to("hello")
    (root / "manifest").write_text(
        '{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/hello",'
        ' "labels": [{"name": "version", "value": "1.0.0"}, {"name": "os", "value": "linux"},'
        ' {"name": "arch", "value": "amd64"}],'
        ' "app": {"exec": ["/bin/hello"], "user": "0", "group": "0"}}'
    )
    yield root


GOLDEN = REPO / "tests/golden"


def assert_golden(name: str, text: str) -> None:
    """Compare ``text`` with tests/golden/NAME; NSPOD_UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("NSPOD_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"missing golden file {path} (run with NSPOD_UPDATE_GOLDEN=1)"
    assert text == path.read_text(), f"{path} differs (review, then NSPOD_UPDATE_GOLDEN=1 to accept)"


@pytest.fixture(scope="session")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/probe/probe.c, built static (it runs inside images that have no libc)."""
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run(
        ["gcc", "-static", "-O2", "-Wall", "-Werror", "-o", str(out), str(REPO / "tests/probe/probe.c")],
        check=True,
        capture_output=True,
    )
    return out


def assert_output_schema(kind: str, value: object) -> None:
    """``value`` (parsed --format=json output) matches $defs/KIND of stage0/schema/schemas/output.json."""
    import json

    import jsonschema

    schema = json.loads((REPO / "stage0/schema/schemas/output.json").read_text())
    validator = jsonschema.Draft202012Validator(
        {**schema, "$ref": f"#/$defs/{kind}"}, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(value)]
    assert not errors, errors


@pytest.fixture(scope="session")
def metadata_service() -> None:
    """nspod's metadata service: its shipped socket units, started (make install enables them on
    a systemd host; a test host boots without them)."""
    import subprocess

    # the service runs this checkout (the shipped unit runs the installed nspod): a runtime drop-in;
    # the checkout and the tests' data dirs may be under /tmp or /home, which the unit hides
    drop_in = Path("/run/systemd/system/nspod-metadata.service.d/50-checkout.conf")
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text(
        f"[Service]\nEnvironment=PYTHONPATH={REPO}\nExecStart=\n"
        f"ExecStart={sys.executable} -m stage0 metadata-service\nPrivateTmp=no\nProtectHome=no\n"
    )
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    subprocess.run(
        ["systemctl", "start", "nspod-metadata.socket", "nspod-metadata-register.socket"], check=True
    )
    # the code under test, not a service an earlier session left running: the next pod starts it
    subprocess.run(["systemctl", "stop", "nspod-metadata.service"], check=True, capture_output=True)
