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
from stage1.nspawn import limit_properties, pod_limits
from stage1.systemd import Systemd, SystemdError


def update(spec: PodSpec, paths: PodPaths, app: str | None, memory: int | None, cpu: int | None) -> int:
    app = spec.chosen(app).name
    if memory is None and cpu is None:
        raise Error("nothing to update", hint="give --memory, --cpu or both")
    try:
        with Systemd(machine=spec.machine) as systemd:
            systemd.set_properties(f"{app}.service", limit_properties(memory, cpu))
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
