"""Pod operations every front end calls (the CLI, the pool keeper, the CRI server): typed
requests in, typed results out; nothing here prints."""

from __future__ import annotations

import dataclasses
import os
import uuid as uuidlib
from dataclasses import dataclass

from stage0.host.executor import call_stage1
from stage0.options import GlobalOptions
from stage0.pods.requests import PodRequest


@dataclass(frozen=True, slots=True)
class Prepared:
    """A prepared pod's directory; for a pod in run/, the starting lock its starter holds (an open
    descriptor, see stage0/pods/dirs.py) until :meth:`start` hands the pod to stage1."""

    path: str
    starting: int | None = None

    def start(self, options: GlobalOptions, *args: str, verb: str = "run") -> int:
        """Run stage1's ``verb`` on the pod, holding the starting lock meanwhile; ``exec`` hands it
        on to nspawn (inherited), so the pod reads "running" from its move to run/ on."""
        assert self.starting is not None, "only a pod in run/ is started"
        os.set_inheritable(self.starting, verb == "exec")
        try:
            return call_stage1(options, verb, self.path, *args)
        finally:
            os.close(self.starting)


# the --insecure-options that lift a part of the profile
RELAXABLE = ("capabilities", "paths", "seccomp", "namespaces")


def relaxing(options: GlobalOptions, request: PodRequest) -> PodRequest:
    """The request with the parts of the profile --insecure-options lifts (a pod file's own too)."""
    lifted = {o.value for o in options.insecure if o.value in RELAXABLE} | set(request.relaxed)
    return dataclasses.replace(request, relaxed=tuple(sorted(lifted)))


def prepare_request(
    options: GlobalOptions,
    request: PodRequest,
    *,
    to_run: bool,
    pull_policy: str = "new",
    uuid_file: str | None = None,
    unit: str | None = None,
) -> Prepared:
    """Create, fill and move the pod directory (to run/, holding its starting lock, or to
    prepared/)."""
    from stage0 import context
    from stage0.images.fetch.policy import PullPolicy
    from stage0.pods.dirs import DirState, Pods
    from stage0.pods.network import load_nets, networks
    from stage0.pods.prepare import build_pod, write_pod
    from stage0.pods.userns import allocate

    with (pods := Pods(options.dir)).naming(request.name, starting=to_run):  # held until it is in run/
        uuid = str(uuidlib.uuid4())
        if uuid_file:  # first thing, so a failed prepare can still be cleaned up by UUID
            with open(uuid_file, "w") as file:
                file.write(uuid + "\n")
        with context.open_store(options) as store, pods.create(uuid) as pod:
            if unit:  # pod@: the unit is known from the first moment, so even a half-made pod is its
                with open(pod.paths.unit, "w") as file:
                    file.write(unit + "\n")
            fetcher = context.fetcher(options, store, PullPolicy(pull_policy))
            shift = allocate(pods.root, pod.path) if request.private_users else None  # recorded first
            nets = networks(request.nets, load_nets([options.system_config, options.local_config]))
            built = build_pod(uuid, relaxing(options, request), fetcher, nets)
            spec = dataclasses.replace(built.spec, private_users=shift)
            write_pod(pod.path, dataclasses.replace(built, spec=spec))
            starting = pods.starting(pod) if to_run else None
            pod = pods.move(pod, DirState.RUN if to_run else DirState.PREPARED)
    return Prepared(pod.path, starting)
