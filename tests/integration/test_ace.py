"""The appc executor conformance suite (the spec authors' ACE validator) run as an nspod pod, as
rkt's tests ran it — from its own pod manifest (--pod-manifest): pre-start, then main and sidekick
side by side on one shared volume, then post-stop; main checks the metadata service from its own
network. All four must pass, with the default confinement profile (#11), on every flavor (#25):
fly passes them too (its apps reach the metadata service at the host's loopback); what the
validator does not check, and fly does not isolate, is in the README's flavor table."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from stage0.images.aci.build import build_aci
from stage0.pods.flavor import BUILT, Flavor
from stage1.abi import MDS_SOCKET
from tests.conftest import ORACLES
from tests.integration.test_flavor_exits import kvm_assets, ready  # noqa: F401 (a fixture)
from tests.integration.test_pods import Nspod

pytestmark = [pytest.mark.systemd, pytest.mark.oracle]
MODES = ("prestart", "main", "sidekick", "poststop")
# the checks that pass on each flavor: all of them, fly's too (a flavor not built is skipped)
PASSING = {Flavor.NSPAWN: MODES, Flavor.FLY: MODES, Flavor.KVM: MODES}
FLAVOR_ARGS = {Flavor.NSPAWN: (), Flavor.FLY: ("--stage1=fly",), Flavor.KVM: ("--stage1=kvm",)}
RUN_ARGS = {Flavor.FLY: ("--insecure-options=all-run",)}  # fly is no isolation boundary


@pytest.fixture(scope="module")
def validator(actool: Path) -> Path:  # actool's fixture builds both oracles
    return ORACLES / "bin" / "ace-validator"


def ace_image(directory: Path, validator: Path, name: str, app: dict[str, object]) -> Path:
    root = directory / name / "layout"
    (root / "rootfs/opt/acvalidator").mkdir(parents=True)
    shutil.copy(validator, root / "rootfs/ace-validator")
    manifest = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": f"coreos.com/{name}",
        "labels": [{"name": "version", "value": "0.8.11"}, {"name": "os", "value": "linux"},
                   {"name": "arch", "value": "amd64"}],
        "app": {"user": "0", "group": "0", **app},
        "annotations": [{"name": "lorem", "value": "ipsum"}],
    }  # fmt: skip
    (root / "manifest").write_text(json.dumps(manifest))
    aci = directory / f"{name}.aci"
    build_aci(str(root), str(aci))
    return aci


@pytest.fixture(
    scope="module",
    # kvm's run is tests/integration/test_ace_kvm.py's (a VM under TCG here: the suite's kvm lane,
    # and the validator's 100 ms metadata timeout judged there)
    params=[
        pytest.param(f, marks=[] if f in BUILT else pytest.mark.skip(reason=f"{f} flavor not built"))
        for f in Flavor
        if f != Flavor.KVM
    ],
)
def flavor(request: pytest.FixtureRequest) -> Flavor:
    return Flavor(request.param)


@pytest.fixture(scope="module")
def ran(
    tmp_path_factory: pytest.TempPathFactory,
    validator: Path,
    metadata_service: None,
    flavor: Flavor,
    request: pytest.FixtureRequest,
) -> subprocess.CompletedProcess[str]:
    ready(flavor, request)
    base = tmp_path_factory.mktemp(f"ace-{flavor}")
    database = [{"name": "database", "path": "/db", "readOnly": False}]
    main = ace_image(base, validator, "ace-validator-main", {
        "exec": ["/ace-validator", "main"],
        "eventHandlers": [{"name": "pre-start", "exec": ["/ace-validator", "prestart"]},
                          {"name": "post-stop", "exec": ["/ace-validator", "poststop"]}],
        "workingDirectory": "/opt/acvalidator",
        "environment": [{"name": "IN_ACE_VALIDATOR", "value": "correct"}],
        "mountPoints": database,
        "ports": [{"name": "www", "protocol": "tcp", "port": 80}],
        "isolators": [{"name": "resource/memory", "value": {"limit": "1G"}}],
    })  # fmt: skip
    sidekick = ace_image(base, validator, "ace-validator-sidekick", {
        "exec": ["/ace-validator", "sidekick"], "mountPoints": database,
    })  # fmt: skip
    # the validator's own pod manifest (its annotations, one shared empty volume), run as written
    nspod = Nspod(base / "data")
    ids = [nspod("fetch", str(aci)).stdout.strip() for aci in (main, sidekick)]
    pod = {
        "acKind": "PodManifest", "acVersion": "0.8.11",
        "apps": [
            {"name": "ace-validator-main", "image": {"name": "coreos.com/ace-validator-main", "id": ids[0]},
             "annotations": [{"name": "lorem", "value": "dolor"}]},
            {"name": "ace-validator-sidekick", "image": {"id": ids[1]}},
        ],
        "volumes": [{"name": "database", "kind": "empty"}],
        "annotations": [{"name": "purpose", "value": "ace-validation"}],
    }  # fmt: skip
    (base / "pod.json").write_text(json.dumps(pod))
    manifest = f"--pod-manifest={base / 'pod.json'}"
    ran = nspod(
        *FLAVOR_ARGS[flavor], "run", *RUN_ARGS.get(flavor, ()), "--mds-register", manifest, timeout=600
    )
    if (
        flavor == Flavor.KVM
        and ran.returncode != 0
        and not [w for w in lines(ran) if w.endswith(("OK", "FAIL"))]
    ):
        pytest.skip(f"the kvm flavor cannot run the validator's pod yet: {ran.stderr.strip()[:300]}")
    [pod] = json.loads(nspod("list", "--full", "--format", "json").stdout)
    assert nspod.status(pod["uuid"]).get("stage1", "nspawn") == flavor
    return ran


def lines(ran: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split(": ", 1)[-1] for line in (ran.stdout + ran.stderr).splitlines()]


@pytest.mark.parametrize("mode", MODES)
def test_the_validator_passes(ran: subprocess.CompletedProcess[str], flavor: Flavor, mode: str) -> None:
    said = lines(ran)
    assert (f"{mode} OK" in said) == (mode in PASSING[flavor]), ran.stdout + ran.stderr
    assert f"{mode} FAIL" not in said or mode not in PASSING[flavor], ran.stdout + ran.stderr


def test_in_order_and_without_a_complaint(ran: subprocess.CompletedProcess[str]) -> None:
    said = [line for line in lines(ran) if line.endswith((" OK", " FAIL")) or line.startswith("==> ")]
    assert said[0] == "prestart OK" and said[-1] == "poststop OK", said
    assert sorted(said[1:3]) == ["main OK", "sidekick OK"] and len(said) == 4, said
    assert ran.returncode == 0, ran.stderr


def test_the_ended_pod_is_no_longer_registered(ran: subprocess.CompletedProcess[str]) -> None:
    # a fly pod has no machine whose end tells the service: its stage1 drops its registration
    connection = _UnixConnection(MDS_SOCKET)
    connection.request("GET", "/pods")
    registered = json.loads(connection.getresponse().read())
    connection.close()
    assert registered == [], registered


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)
