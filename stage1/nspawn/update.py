"""``update``: change a running app's memory and CPU limits (``nspod update``), as
``systemctl set-property --runtime`` on its unit inside the pod, through the pod's own systemd
(machined's bus), and record them in the pod's ``profile.json`` so ``status`` shows them. They last
until the pod ends: each start writes the app units afresh from the pod spec.
"""

from __future__ import annotations

import json
from typing import Any

from stage1.abi import Error, PodPaths, PodSpec
from stage1.atomic import write_atomic
from stage1.hostplan import host_unit
from stage1.nspawn.service import limit_properties, pod_limits
from stage1.systemd import Systemd, SystemdError
from stage1.transient import Property

INFINITY = 2**64 - 1  # systemd's "no limit" for a usec or byte property


def cpu_list(text: str) -> bytes:
    """A cpuset list ("0-2,5") as systemd's AllowedCPUs= bit mask (bit N: CPU N, byte 0 first)."""
    chosen: set[int] = set()
    for part in filter(None, text.replace(" ", "").split(",")):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise Error(f"bad CPU list {text!r}", hint="say it as cpuset does: 0-3,6")
        chosen.update(range(int(first), int(last or first) + 1))
    mask = bytearray((max(chosen) // 8 + 1) if chosen else 0)
    for cpu in chosen:
        mask[cpu // 8] |= 1 << (cpu % 8)
    return bytes(mask)


def cri_properties(
    *,
    shares: int | None = None,
    quota_us: int | None = None,
    period_us: int | None = None,
    cpus: str | None = None,
    mems: str | None = None,
) -> tuple[Property, ...]:
    """A CRI container's CPU shares, CFS quota and period, and cpuset, as its unit's properties.
    A quota of 0 or less lifts the limit. (systemd maps CPUShares= to cpu.weight on cgroup v2;
    AllowedCPUs= and AllowedMemoryNodes= hold on v2 alone.)"""
    props = []
    if shares is not None:
        props.append(Property("CPUShares", "t", shares))
    if period_us is not None and period_us > 0:
        props.append(Property("CPUQuotaPeriodUSec", "t", period_us))
    if quota_us is not None:
        period = period_us if period_us and period_us > 0 else 100_000  # the kernel's default period
        per_second = quota_us * 1_000_000 // period if quota_us > 0 else INFINITY
        props.append(Property("CPUQuotaPerSecUSec", "t", per_second))
    if cpus:
        props.append(Property("AllowedCPUs", "ay", cpu_list(cpus)))
    if mems:
        props.append(Property("AllowedMemoryNodes", "ay", cpu_list(mems)))
    return tuple(props)


def update(
    spec: PodSpec,
    paths: PodPaths,
    app: str | None,
    memory: int | None,
    cpu: int | None,
    more: tuple[Property, ...] = (),
) -> int:
    """``more``: the other properties a CRI UpdateContainerResources sets (cri_properties)."""
    app = spec.chosen(app).name
    if memory is None and cpu is None and not more:
        raise Error("nothing to update", hint="give --memory, --cpu or both")
    try:
        # a hostPID sandbox's app is a unit of the host's systemd (stage1/fly)
        machine, unit = (
            (None, host_unit(spec.uuid, app)) if spec.host_pid else (spec.machine, f"{app}.service")
        )
        with Systemd(machine=machine) as systemd:
            systemd.set_properties(unit, limit_properties(memory, cpu) + more)
    except SystemdError as error:
        raise Error(
            f"cannot update app {app} of pod {spec.uuid}: {error.message}",
            hint="only a running pod can be updated; 'nspod status' tells its state",
        ) from None
    profiles = record(paths, app, memory, cpu)
    # and the pod's own bound, the sum of its apps' (the one that holds on a cgroup v1 host)
    pod = pod_limits(
        [p["memory_max"] for p in profiles.values()], [p["cpu_quota_percent"] for p in profiles.values()]
    )
    if pod:
        with open(paths.unit) as file, Systemd() as systemd:
            systemd.set_properties(file.read().strip(), pod)
    return 0


def record(paths: PodPaths, app: str, memory: int | None, cpu: int | None) -> dict[str, Any]:
    """The new limits into profile.json (written when the pod started), atomically; all of it."""
    with open(paths.profile) as file:
        profiles: dict[str, Any] = json.load(file)
    if memory is not None:
        profiles[app]["memory_max"] = memory
    if cpu is not None:
        profiles[app]["cpu_quota_percent"] = cpu
    write_atomic(paths.profile, json.dumps(profiles, indent=2, sort_keys=True), sync=False)
    return profiles
