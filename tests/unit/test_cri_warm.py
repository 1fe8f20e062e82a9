"""The CRI's warm pool (stage0/cri/warm.py): its size from nspod.conf, which requests a spare
serves, and that exactly one claim wins a spare. Booting spares is seen in bench/cri.py."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from stage0.cri import translate, warm
from stage0.cri.proto import api_pb2
from stage0.errors import Error
from stage0.options import GlobalOptions
from stage0.pods.dirs import DirState, Pod


def options_with(tmp_path: Path, system: str = "", local: str = "") -> GlobalOptions:
    for name, text in (("system", system), ("local", local)):
        (tmp_path / name).mkdir(parents=True)
        if text:
            (tmp_path / name / "nspod.conf").write_text(text)
    return GlobalOptions(
        dir=str(tmp_path / "data"),
        system_config=str(tmp_path / "system"),
        local_config=str(tmp_path / "local"),
    )


def test_spares_wanted_local_over_system(tmp_path: Path) -> None:
    assert warm.spares_wanted(options_with(tmp_path)) == 0
    options = options_with(tmp_path / "b", "[cri]\nspares = 3\n", "[cri]\nspares = 1\n")
    assert warm.spares_wanted(options) == 1


@pytest.mark.parametrize("value", ["-1", "true", '"2"'])
def test_spares_wanted_refuses_what_is_not_a_count(tmp_path: Path, value: str) -> None:
    with pytest.raises(Error, match=r"\[cri\] spares"):
        warm.spares_wanted(options_with(tmp_path, local=f"[cri]\nspares = {value}\n"))


def sandbox_request(options: GlobalOptions, **fields: Any) -> Any:
    metadata = api_pb2.PodSandboxMetadata(name="web", uid="1234", namespace="default", attempt=2)
    config = api_pb2.PodSandboxConfig(
        metadata=metadata, linux=api_pb2.LinuxPodSandboxConfig(), log_directory="/var/log/pods/x", **fields
    )
    return translate.sandbox_request(config)


def fake_spares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, fingerprint: str | None = None
) -> warm.Spares:
    options = options_with(tmp_path, local="[cri]\nspares = 1\n")
    mark = fingerprint or warm.Spares(options).fingerprint
    pods = []
    for index in range(count):
        path = tmp_path / "data" / f"pod{index}"
        path.mkdir(parents=True)
        (path / warm.READY).write_text(mark)
        pods.append(Pod(uuid=f"pod{index}", where=DirState.RUN, path=str(path)))

    def ready(_: object) -> list[Pod]:
        return [p for p in pods if os.path.exists(os.path.join(p.path, warm.READY))]

    monkeypatch.setattr(warm, "ready", ready)
    monkeypatch.delenv("NSPOD_POOL", raising=False)
    monkeypatch.setattr(warm, "create_sandbox", lambda *_, **__: pytest.fail("no boot in a claim"))
    return warm.Spares(options)


def test_a_plain_sandbox_claims_a_spare_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spares = fake_spares(tmp_path, monkeypatch, 1)
    request = sandbox_request(spares.options)  # its names and log directory are not the pod's shape
    pod = spares.claim(request)
    assert pod is not None
    assert os.path.exists(os.path.join(pod.path, warm.TAKEN))
    assert not os.path.exists(os.path.join(pod.path, warm.READY))
    assert spares.claim(request) is None  # the only spare is taken


def test_a_sandbox_of_another_shape_boots_cold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spares = fake_spares(tmp_path, monkeypatch, 1)
    assert spares.claim(sandbox_request(spares.options, hostname="web-0")) is None
    dns = api_pb2.DNSConfig(servers=["10.0.0.10"], searches=["svc.cluster.local"])
    assert spares.claim(sandbox_request(spares.options, dns_config=dns)) is None
    assert spares.claim(sandbox_request(spares.options, annotations={"team": "web"})) is None
    # a cgroup parent: spares run in machine.slice, and a unit's slice is fixed
    parent = dataclasses.replace(sandbox_request(spares.options), cgroup_parent="kubepods-pod1.slice")
    assert spares.claim(parent) is None
    assert spares.claim(sandbox_request(spares.options)) is not None


def test_no_claim_when_the_pool_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spares = fake_spares(tmp_path, monkeypatch, 1)
    monkeypatch.setenv("NSPOD_POOL", "0")
    assert spares.claim(sandbox_request(spares.options)) is None
    monkeypatch.delenv("NSPOD_POOL")
    spares.size = 0
    assert spares.claim(sandbox_request(spares.options)) is None


def test_a_spare_of_another_shape_is_never_claimed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spares = fake_spares(tmp_path, monkeypatch, 1, fingerprint="booted-by-another-nspod")
    assert spares.claim(sandbox_request(spares.options)) is None
