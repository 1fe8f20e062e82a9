"""stage1's ``logs`` entry point: a pod's output from the host's journal, which outlives the pod."""

from __future__ import annotations

from stage1.abi import PodPaths, PodSpec
from stage1.journal import Follower
from stage1.run import load


def journal_match(spec: PodSpec, paths: PodPaths) -> tuple[str, str]:
    """The journal field and value of the pod's lines: the POD_UUID= its transient unit adds, or,
    for pod@NAME (one unit file for every run of NAME), the run's invocation ID."""
    try:
        with open(paths.invocation) as file:
            invocation = file.read().strip()
    except FileNotFoundError:
        invocation = ""
    return ("_SYSTEMD_INVOCATION_ID", invocation) if invocation else ("POD_UUID", spec.uuid)


def logs(pod_dir: str, *, follow: bool, app: str | None = None) -> int:
    """The pod's output as ``run`` shows it, or ``app``'s alone, from the host's journal (it
    outlives the pod)."""
    spec, paths = load(pod_dir)
    follower = Follower(*journal_match(spec, paths), app=app)
    if follow:
        follower.wait()
    else:
        follower.finish(None)
    return 0
