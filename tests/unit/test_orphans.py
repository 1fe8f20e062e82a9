"""Which pod networks gc sweeps (stage1/orphans.py): those of its own pods directory whose pod is
nowhere there."""

from __future__ import annotations

from stage1.cni import pods_dir
from stage1.orphans import orphaned

PODS = "/var/lib/nspod/pods"
PLACES = ["run", "exited-garbage", "garbage", ".removing"]
UUID = "0b7c0a2e-0000-4000-8000-000000000001"


def test_a_network_whose_pod_is_gone_is_an_orphan() -> None:
    assert orphaned(UUID, PODS, PODS, PLACES, set())


def test_a_network_whose_pod_is_anywhere_is_not() -> None:
    for place in PLACES:
        assert not orphaned(UUID, PODS, PODS, PLACES, {f"{PODS}/{place}/{UUID}"})


def test_another_data_directory_s_network_is_left_to_its_own_gc() -> None:
    assert not orphaned(UUID, "/tmp/other/pods", PODS, PLACES, set())


def test_the_pods_directory_of_a_pod() -> None:
    assert pods_dir(f"{PODS}/run/{UUID}") == PODS
    assert pods_dir(f"{PODS}/run/{UUID}/") == PODS
