"""The transient service description is pure data; golden files pin what systemd receives."""

from __future__ import annotations

import pytest

from stage1.abi import Error
from stage1.nspawn.service import POD_DEVICES
from stage1.transient import (
    CollectMode,
    ExecCommand,
    KillMode,
    ServiceType,
    TransientService,
    render_properties,
)
from tests.conftest import REPO, assert_golden

POD = TransientService(
    name="nspod-0123abcd.service",
    description="nspod pod 0123abcd",
    exec_start=(
        ExecCommand.of("/usr/bin/systemd-nspawn", "--boot", "--keep-unit", "--machine=nspod-0123abcd"),
    ),
    type=ServiceType.NOTIFY,
    slice="machine.slice",
    delegate=True,
    kill_mode=KillMode.MIXED,
    log_extra_fields=(("POD_UUID", "0123abcd"), ("POD_NAME", "web")),
    environment=(("LANG", "C.UTF-8"),),
    device_allow=POD_DEVICES,
)


def test_pod_properties_golden() -> None:
    assert_golden("transient-pod.txt", render_properties(POD.properties()))


def test_minimal_properties_golden() -> None:
    service = TransientService(
        name="x.service",
        exec_start=(ExecCommand("/bin/sh", ("sh", "-c", "exit 7"), True),),
        type=ServiceType.ONESHOT,
        collect_mode=CollectMode.INACTIVE,
        add_ref=False,
    )
    assert_golden("transient-minimal.txt", render_properties(service.properties()))


def test_signatures_are_what_systemd_expects() -> None:
    signatures = {p.name: p.signature for p in POD.properties()}
    assert signatures == {
        "Description": "s",
        "Type": "s",
        "ExecStart": "a(sasb)",
        "CollectMode": "s",
        "AddRef": "b",
        "Slice": "s",
        "Delegate": "b",
        "KillMode": "s",
        "DevicePolicy": "s",
        "DeviceAllow": "a(ss)",
        "Environment": "as",
        "LogExtraFields": "aay",
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "no-suffix", "exec_start": (ExecCommand.of("/bin/true"),)},
        {"name": "a b.service", "exec_start": (ExecCommand.of("/bin/true"),)},
        {"name": "x.service", "exec_start": ()},
        {
            "name": "x.service",
            "exec_start": (ExecCommand.of("/bin/true"),),
            "log_extra_fields": (("_PID", "1"),),
        },
        {
            "name": "x.service",
            "exec_start": (ExecCommand.of("/bin/true"),),
            "log_extra_fields": (("lower", "1"),),
        },
    ],
)
def test_invalid_services_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(Error):
        TransientService(**kwargs)  # type: ignore[arg-type]


def test_pod_at_service_allows_the_devices_a_transient_pod_does() -> None:
    lines = (REPO / "units/pod@.service").read_text().splitlines()
    allowed = [
        tuple(line.removeprefix("DeviceAllow=").split()) for line in lines if line.startswith("DeviceAllow=")
    ]
    assert "DevicePolicy=closed" in lines and allowed == list(POD_DEVICES)
