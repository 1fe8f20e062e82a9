"""``restart``: stop a pod and start the same pod again, as ``podman restart`` does.

A pod a pod@NAME.service runs is restarted as ``systemctl restart`` restarts it: its unit is
stopped (the pod's orderly halt) and started again, which makes the pod afresh from its pod file
under the same name. A pod ``nspod run`` made is a transient unit that is gone once the pod exits,
and its directory records one life (exit codes, network teardown, a garbage mark): it is not
started twice. Restarting it is refused, with the way to run it again."""

from __future__ import annotations

from stage0.errors import FailedPreconditionError, UnavailableError
from stage0.host.executor import restart_host_unit
from stage0.options import GlobalOptions
from stage0.pods.dirs import Pods


def unit_of(path: str) -> str:
    try:
        with open(path) as file:
            return file.read().strip()
    except FileNotFoundError:
        return ""


def is_template_unit(unit: str) -> bool:
    """Whether ``unit`` is an instance of pod@.service (a restartable unit of its own file)."""
    return unit.startswith("pod@") and unit.endswith(".service")


def restart(options: GlobalOptions, pod_id: str) -> str:
    """Restart the pod; the UUID of the pod its unit now runs (a pod@ start makes a new one)."""
    pods = Pods(options.dir)
    pod = pods.find(pod_id)
    unit = unit_of(pod.paths.unit)
    if not is_template_unit(unit):
        raise FailedPreconditionError(
            f"pod {pod.uuid} was started by 'nspod run' (unit {unit or 'none'}): it cannot start again",
            hint="run its image again with 'nspod run', or declare it in a pod file and start "
            "pod@NAME.service, which 'nspod restart' restarts",
        )
    name = pod.machine() or pod.uuid
    state = restart_host_unit(unit)
    if state not in ("active", "activating", "reloading"):
        raise UnavailableError(f"{unit} is {state} after its restart", hint=f"journalctl -u {unit}")
    return pods.find(name).uuid
