"""UpdateContainerResources: a CRI container's CPU shares, CFS quota and period, memory limit,
cpuset and OOM score, changed while it runs.

The limits become live properties of the app's unit in its pod (stage1's ``update`` entry point,
``SetUnitProperties`` over the pod's bus, as ``nspod update`` does): the container stays a unit
whose limits ``systemctl -M <pod> show <app>.service`` tells. The OOM score is no unit property
that can change at run time (systemd applies ``OOMScoreAdjust=`` when it starts a process): it is
written to each of the app's processes, found in its control group.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from stage0.cri.stats import pod_group
from stage0.errors import Error, ErrorKind
from stage0.host import cgroups
from stage0.host.stage1client import Stage1Client
from stage0.options import GlobalOptions
from stage1.abi import PodPaths


class UpdateError(Error):
    kind = ErrorKind.FAILED_PRECONDITION
    hint = "only a running container's resources can be updated; see ContainerStatus"


def stage1_args(linux: Any) -> list[str]:
    """stage1 ``update``'s options for a ``LinuxContainerResources``; a field left 0 (or empty)
    is left as it is, as containerd leaves it."""
    args = []
    if linux.memory_limit_in_bytes > 0:
        args.append(f"--memory={linux.memory_limit_in_bytes}")
    if linux.cpu_shares > 0:
        args.append(f"--cpu-shares={linux.cpu_shares}")
    if linux.cpu_period > 0:
        args.append(f"--cpu-period-us={linux.cpu_period}")
    if linux.cpu_quota != 0:
        args.append(f"--cpu-quota-us={linux.cpu_quota}")  # -1: no limit
    if linux.cpuset_cpus:
        args.append(f"--cpuset-cpus={linux.cpuset_cpus}")
    if linux.cpuset_mems:
        args.append(f"--cpuset-mems={linux.cpuset_mems}")
    return args


def set_oom_score_adj(group: str, value: int, root: str = cgroups.ROOT, proc: str = cgroups.PROC) -> int:
    """``value`` as the OOM score adjustment of every process in ``group``; how many took it."""
    if not -1000 <= value <= 1000:
        raise UpdateError(f"oom_score_adj {value} is out of -1000…1000")
    done = 0
    for pid in cgroups.pids(root, group):
        with contextlib.suppress(OSError), open(os.path.join(proc, str(pid), "oom_score_adj"), "w") as file:
            file.write(f"{value}\n")
            done += 1
    return done


def update(options: GlobalOptions, pod_dir: str, app: str, linux: Any) -> None:
    """UpdateContainerResources of app ``app`` of the pod in ``pod_dir`` (running)."""
    args = stage1_args(linux)
    if args and Stage1Client.of(options, pod_dir).update(app, *args) != 0:
        raise UpdateError(f"cannot update the resources of container {app} (its pod is not running)")
    if linux.oom_score_adj:
        group = pod_group(PodPaths(pod_dir))
        service = cgroups.find_group(cgroups.ROOT, f"{app}.service", below=group) if group else None
        if service is None:
            raise UpdateError(f"container {app} is not running")
        set_oom_score_adj(service, linux.oom_score_adj)
