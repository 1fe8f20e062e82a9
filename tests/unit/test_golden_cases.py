"""Declarative golden cases, quadlet-style: each ``tests/golden/cases/NAME.toml`` is a pod spec
(``[pod]``, as stage0 writes ``pod.json``) and how it runs (``[run]``: ``stdio``, ``debug``,
inherited ``sockets``); ``NAME.expected`` holds the pod's units, nspawn's argv and the host unit's
properties it must produce, or the case's ``[expect] error`` says what must be refused.
NSPOD_UPDATE_GOLDEN=1 rewrites the ``.expected`` files for review.

The flavor axis (issue #25): every case a fly pod can be (no CNI net, port, user namespace, app
sandbox, inherited socket or foreground stdio: stage0 refuses those for fly) is also generated
for the fly flavor, its pod's host unit and each app's ``systemd-run`` command line beside the
nspawn pod's files, in ``NAME.fly.expected``.
"""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

from stage1 import hostapps
from stage1 import hostplan as plan
from stage1.abi import ABI_VERSION, Error, PodPaths, PodSpec, unit_name
from stage1.app_unit import HIDDEN
from stage1.cni import Attachment, down_script, loopback_proxies, plugin_type
from stage1.fly import podplan
from stage1.nat import masquerade_subnets, nft_ruleset, shared_setup
from stage1.nspawn.service import nspawn_argv, pod_service
from stage1.stdio import Stdio
from stage1.transient import render_properties
from stage1.units import assign_sockets, tree
from tests.conftest import GOLDEN, assert_golden

CASES = sorted((GOLDEN / "cases").glob("*.toml"))
UUID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0"
PATHS = PodPaths(f"/var/lib/nspod/pods/run/{UUID}")
UNITS = "etc/systemd/system/"


def spec(pod: dict[str, Any]) -> PodSpec:
    machine = pod.get("machine", "web")
    apps = [{"rootfs": f"/var/lib/nspod/trees/{a['name']}/rootfs", **a} for a in pod["apps"]]
    data = {"abi": ABI_VERSION, "uuid": UUID, "machine": machine, "hostname": machine, **pod, "apps": apps}
    return PodSpec.from_json(json.dumps(data))


def generate(case: dict[str, Any]) -> str:
    pod = spec(case["pod"])
    run = case.get("run", {})
    stdio = Stdio(run.get("stdio", "journal"))
    sockets = assign_sockets(pod, [tuple(s) for s in run.get("sockets", [])]) if "sockets" in run else None
    files = tree(pod, sockets, stdio=stdio).files
    text = "".join(
        f"### {path.removeprefix(UNITS)}\n{files[path].content}\n"
        for path in sorted(files)
        if path.startswith((UNITS, "nspod/health/"))  # a health check's configuration too
    )
    argv = nspawn_argv(pod, PATHS, debug=run.get("debug", False), stdio=stdio)
    text += "### nspawn\n" + "".join(shlex.quote(a) + "\n" for a in argv)
    terminal = (0, 1, 2) if stdio is Stdio.TTY else None
    text += "\n### host unit\n" + render_properties(
        pod_service(pod, PATHS, stdio=stdio, terminal=terminal).properties()
    )
    if pod.networks is not None:
        plugins = tuple(f"/usr/lib/cni/{plugin_type(n)}" for n in pod.networks)
        text += "\n### network teardown\n" + down_script(pod, plugins, unit_name(pod.machine))
    if pod.ports:
        attachment = Attachment("default", "eth0", run["result"])
        others = tuple(Attachment(n.name, f"eth{i}", {}) for i, n in enumerate(pod.networks or ()) if i)
        text += "\n### nft\n" + nft_ruleset(pod, (attachment, *others))
        subnets = masquerade_subnets(pod, (attachment, *others))
        text += "\n### nft, shared table (a fresh host's)\n" + shared_setup(subnets, guard=True)
        for proxy in loopback_proxies(pod, attachment, unit_name(pod.machine)):
            text += f"\n### {proxy.name}\n" + render_properties(proxy.properties())
    return text


# what stage0 never gives a fly pod (stage0/pods/flavor.py check_request), and a foreground run's stdio
NOT_FLY_POD = ("networks", "ports", "private_users", "sandbox", "host_pid")
NOT_FLY_RUN = ("stdio", "sockets")


def fly_case(case: dict[str, Any]) -> bool:
    pod, run = case["pod"], case.get("run", {})
    return (
        "expect" not in case
        and not any(k in pod for k in NOT_FLY_POD)
        and not any(k in run for k in NOT_FLY_RUN)
    )


FLY_CASES = [p for p in CASES if fly_case(tomllib.loads(p.read_text()))]


def generate_fly(case: dict[str, Any]) -> str:
    """The fly flavor's units for the case's pod: its own host unit (a supervisor) and each app's."""
    pod = spec(case["pod"])
    service = podplan.pod_service(pod, PATHS.root, "/usr/bin/python3")
    text = f"### {service.name}\n" + render_properties(service.properties())
    for app in pod.apps:
        place = plan.Place(
            root=hostapps.root(PATHS, app.name),
            etc=f"{PATHS.stage1}/nspod/etc",
            stdio=f"{PATHS.layers(app.name)}/stdio",
            exit=f"{PATHS.status}/{app.name}{hostapps.EXIT}",
            pod_unit=podplan.pod_unit(pod),
            leader=0,
            host_network=pod.networks is None,
        )
        argv = podplan.app_argv(pod, app, place, hostapps.volumes(pod, PATHS, app), HIDDEN)
        text += f"\n### {plan.unit_name(pod, app.name)}\n" + "".join(shlex.quote(a) + "\n" for a in argv)
    return text


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30
    assert len(FLY_CASES) >= 20  # the flavor axis covers most of them


@pytest.mark.parametrize("path", FLY_CASES, ids=lambda p: p.stem)
def test_fly_case(path: Path) -> None:
    assert_golden(f"cases/{path.stem}.fly.expected", generate_fly(tomllib.loads(path.read_text())))


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case(path: Path) -> None:
    case = tomllib.loads(path.read_text())
    error = case.get("expect", {}).get("error")
    if error:
        with pytest.raises(Error) as caught:
            generate(case)
        assert error in caught.value.message, caught.value.message
        return
    assert_golden(f"cases/{path.stem}.expected", generate(case))
