"""Pod operations every front end calls (the CLI, the pool keeper, the CRI server): typed
requests in, typed results out (:mod:`stage0.api.views`); nothing here prints. A pod is named by
its UUID, a unique prefix of it, or its machine name (``Pods.find``)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from stage0.api.views import PodView, pod_view
from stage0.errors import FailedPreconditionError, NotFoundError, UnavailableError
from stage0.events import emit
from stage0.host.stage1client import Stage1Client
from stage0.images.fetch.policy import QUIET, Report
from stage0.options import GlobalOptions
from stage0.pods.dirs import DirState, Pod, PodNotFound, Pods, PodState
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
            return Stage1Client.of(options, self.path).call(verb, *args)
        finally:
            os.close(self.starting)


# the --insecure-options that lift a part of the profile
RELAXABLE = ("capabilities", "paths", "seccomp", "namespaces")


def relaxing(options: GlobalOptions, request: PodRequest) -> PodRequest:
    """The request with the parts of the profile --insecure-options lifts (a pod file's own too)."""
    lifted = {o.value for o in options.insecure if o.value in RELAXABLE} | set(request.relaxed)
    return dataclasses.replace(request, relaxed=tuple(sorted(lifted)))


def prepare(
    options: GlobalOptions,
    request: PodRequest,
    *,
    to_run: bool,
    pull_policy: str = "new",
    uuid_file: str | None = None,
    unit: str | None = None,
    report: Report = QUIET,
) -> Prepared:
    """Create, fill and move the pod directory (to run/, holding its starting lock, or to
    prepared/)."""
    from stage0 import context
    from stage0.images.fetch.policy import PullPolicy
    from stage0.pods.flavor import STAGE1_ANNOTATION, check_consent, check_request, parse, record
    from stage0.pods.network import load_nets, networks
    from stage0.pods.prepare import build_pod, write_pod
    from stage0.pods.userns import allocate

    stage1 = parse(request.stage1) if request.stage1 else options.stage1  # a pod file's own first
    check_consent(stage1, frozenset(o.value for o in options.insecure), request.relaxed)
    check_request(stage1, request)
    if stage1:  # cat-manifest says which; none: nspawn, as every pod before flavors
        request = dataclasses.replace(
            request, annotations=(*request.annotations, (STAGE1_ANNOTATION, stage1))
        )
    with (pods := Pods(options.dir)).naming(request.name, starting=to_run):  # held until it is in run/
        uuid = str(uuidlib.uuid4())
        if uuid_file:  # first thing, so a failed prepare can still be cleaned up by UUID
            with open(uuid_file, "w") as file:
                file.write(uuid + "\n")
        with context.open_store(options) as store, pods.create(uuid) as pod:
            if unit:  # pod@: the unit is known from the first moment, so even a half-made pod is its
                with open(pod.paths.unit, "w") as file:
                    file.write(unit + "\n")
            fetcher = context.fetcher(options, store, PullPolicy(pull_policy), report)
            shift = allocate(pods.root, pod.path) if request.private_users else None  # recorded first
            nets = networks(request.nets, load_nets([options.system_config, options.local_config]))
            built = build_pod(uuid, relaxing(options, request), fetcher, nets)
            spec = dataclasses.replace(built.spec, private_users=shift)
            write_pod(pod.path, dataclasses.replace(built, spec=spec))
            record(pod.path, stage1)  # every later verb runs this stage1 (stage0/host/executor.py)
            starting = pods.starting(pod) if to_run else None
            pod = pods.move(pod, DirState.RUN if to_run else DirState.PREPARED)
    emit("create", pod=uuid, pod_name=spec.machine, image=",".join(pod.image_ids()) or None)
    return Prepared(pod.path, starting)


def start_prepared(options: GlobalOptions, pod_id: str) -> Prepared:
    """A prepared pod moved to run/ (``run-prepared``), its starting lock held: :meth:`Prepared.start`
    it. A second start of the same pod fails at the move."""
    from stage0 import context

    pods = Pods(options.dir)
    pod = pods.find(pod_id)
    if pod.state() is not PodState.PREPARED:
        raise FailedPreconditionError(
            f"pod {pod.uuid} is {pod.state()}, not prepared", hint="only a prepared pod can be run this way"
        )
    with pods.naming(pod.machine(), starting=True):  # refused, the pod stays prepared
        with context.open_store(options) as store:
            store.mark_used(pod.image_ids())
        starting = pods.starting(pod)
        pod = pods.move(pod, DirState.RUN)
    return Prepared(pod.path, starting)


def list_pods(options: GlobalOptions) -> list[PodView]:
    """Every pod, each read at once (a pod removed while we look is left out)."""
    views = []
    for pod in Pods(options.dir).all():
        try:
            views.append(pod_view(pod))
        except FileNotFoundError:
            continue
    return views


def find(options: GlobalOptions, pod_id: str) -> Pod:
    return Pods(options.dir).find(pod_id)


def pod_status(options: GlobalOptions, pod_id: str, *, with_pid: bool = True) -> PodView:
    """One pod, with its host unit's main PID while it runs (asked of systemd: ``with_pid``)."""
    pod = find(options, pod_id)
    try:
        state = pod.state()
        pid = _unit_state(pod)[1] if with_pid and state is PodState.RUNNING else 0
        return pod_view(pod, pid=pid or None)
    except FileNotFoundError:  # gc or rm removed it while we read it
        raise PodNotFound(f"pod {pod_id} was removed meanwhile") from None


def profile(view: PodView) -> Any:
    """Each app's confinement as stage1 applied it (written when the pod starts), else None."""
    from stage1.abi import PodPaths

    try:
        with open(PodPaths(view.path).profile) as file:
            return json.load(file)
    except FileNotFoundError:
        return None


def wait_pod(options: GlobalOptions, pod_id: str, until: str, timeout: float) -> Pod:
    """Until the pod has ``exited`` or is ``ready`` (running, its unit active); 0: no deadline."""
    deadline = time.monotonic() + (timeout or float("inf"))
    pods = Pods(options.dir)
    while True:
        pod = pods.find(pod_id)
        state = pod.state()
        if until == "exited" and not state.alive and state is not PodState.PREPARED:
            return pod
        if until == "ready" and state is PodState.RUNNING and _unit_state(pod)[0] == "active":
            return pod
        if until == "ready" and state in (PodState.EXITED, PodState.EXITED_GARBAGE):
            raise FailedPreconditionError(
                f"pod {pod.uuid} exited before it was ready", hint=f"see 'nspod status {pod.uuid[:8]}'"
            )
        if time.monotonic() > deadline:
            raise UnavailableError(f"pod {pod.uuid} is still {state} after {timeout:g}s")
        time.sleep(0.1)


def _unit_state(pod: Pod) -> tuple[str, int]:
    """(ActiveState, MainPID) of the pod's host unit."""
    from stage0.host.executor import unit_state

    try:
        with open(pod.paths.unit) as file:
            unit = file.read().strip()
    except FileNotFoundError:
        return "", 0
    return unit_state(unit)


def stop(options: GlobalOptions, pod: Pod, *, force: bool = False) -> bool:
    """Stop a running pod (stage1 ``stop``) and detach what a killed ``app add`` left mounted on
    the host; False when stage1 failed (it said why)."""
    from stage0.host.mounts import detach_below

    if Stage1Client.of(options, pod.path).stop(force=force) != 0:
        return False
    detach_below(pod.path)
    return True


def remove_dir(options: GlobalOptions, pod: Pod) -> bool:
    """Clean up after ``pod`` and remove its directory; False when another nspod got there first."""
    if not os.path.isdir(pod.path):
        return False
    name = pod.machine()
    # only a pod stage1 began to start has host state to clean up (a unit, its network), but a
    # start can be cut short anywhere (kill -9 of nspod run) once the unit's name is written
    if os.path.exists(pod.paths.started) or os.path.exists(pod.paths.unit):
        Stage1Client.of(options, pod.path).gc()
    Pods(options.dir).remove(pod)
    emit("remove", pod=pod.uuid, pod_name=name)
    return True


def remove(options: GlobalOptions, pod_id: str, *, force: bool = False) -> str:
    """Remove a pod that no longer runs (``force``: a running one is stopped first, at once); its
    UUID."""
    pod = find(options, pod_id)
    if force and pod.state() is PodState.RUNNING:
        if not stop(options, pod, force=True):
            raise UnavailableError(f"stopping pod {pod.uuid} failed", hint="see the pod's journal")
        pod = find(options, pod_id)
    if pod.state().alive:
        raise FailedPreconditionError(
            f"pod {pod.uuid} is {pod.state()}", hint=f"stop it first: nspod stop {pod.uuid[:8]}"
        )
    if not remove_dir(options, pod):
        raise NotFoundError(f"pod {pod.uuid} was removed meanwhile", hint="see 'nspod list'")
    return pod.uuid
