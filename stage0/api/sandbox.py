"""App sandboxes (rkt's ``app`` verbs, the primitives of Kubernetes' CRI): a booted pod with no
apps yet, whose apps are added, started, stopped and removed while it runs. A stage1 step that
fails (it has said why on stderr or in the journal) raises :class:`Stage1Failed` with its exit
code; the CLI exits with that code."""

from __future__ import annotations

import contextlib
import dataclasses
import os

from stage0 import context
from stage0.api.pods import find, prepare, relaxing
from stage0.api.views import AppView, PodView, pod_apps, pod_view, recorded_app
from stage0.errors import Error, ErrorKind, NotFoundError
from stage0.host.mounts import detach_below
from stage0.host.stage1client import Stage1Client
from stage0.images.fetch.policy import QUIET, PullPolicy, Report
from stage0.options import GlobalOptions
from stage0.pods.dirs import Pod, PodState
from stage0.pods.requests import AppRequest, PodRequest
from stage0.pods.sandbox import (
    changing,
    drop_app,
    plan_app,
    remove_app_files,
    sandbox_spec,
    save_settings,
    written,
)
from stage1.abi import APP_ROOT, PodPaths, VolumeSpec


class Stage1Failed(Error):
    """stage1 ended with ``code`` (its own message is out already)."""

    kind = ErrorKind.UNAVAILABLE

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what} failed (stage1 exit status {code})")
        self.code = code


def create_sandbox(
    options: GlobalOptions,
    request: PodRequest,
    *,
    pull_policy: str = "new",
    uuid_file: str | None = None,
    report: Report = QUIET,
) -> PodView:
    """Prepare and boot an empty pod (``nspod app sandbox``) with the request's pod-wide settings,
    which every app added later gets too; its view once it runs."""
    request = dataclasses.replace(relaxing(options, request), sandbox=True)
    pod = prepare(options, request, to_run=True, pull_policy=pull_policy, uuid_file=uuid_file, report=report)
    save_settings(pod.path, request)
    code = pod.start(options, "--detach")
    if code != 0:
        raise Stage1Failed("booting the sandbox", code)
    return pod_view(find(options, pod.path.rsplit("/", 1)[-1]))


def add_app(
    options: GlobalOptions,
    pod_id: str,
    app: AppRequest,
    *,
    pull_policy: str = "new",
    volumes: tuple[VolumeSpec, ...] = (),
    report: Report = QUIET,
) -> str:
    """Fetch, plan (as ``run`` plans an app) and mount the app into the running sandbox; its name.
    ``volumes``: pod volumes the app brings (a CRI container's host paths). A failure leaves no
    half-added app: what stage1 began is undone and the app's files are taken out again."""
    pod = find(options, pod_id)
    with changing(pod):
        spec = sandbox_spec(pod)
        with context.open_store(options) as store:
            fetcher = context.fetcher(options, store, PullPolicy(pull_policy), report)
            name, files = plan_app(pod, spec, app, fetcher, volumes=volumes)
        with written(files):
            try:
                code = Stage1Client.of(options, pod.path).app("add", name)
                if code != 0:
                    raise Stage1Failed(f"adding app {name}", code)
            except BaseException:
                _undo_add(options, pod, name)
                remove_app_files(pod, name)
                raise
    return name


def _undo_add(options: GlobalOptions, pod: Pod, name: str) -> None:
    """What a failed (or killed) ``app add`` of stage1 may have left: the app's root and units in
    the pod (while the pod's files still name the app), and any mount of it on the host."""
    with contextlib.suppress(Error):
        Stage1Client.of(options, pod.path).app("rm", name)
    paths = PodPaths(pod.path)
    detach_below(os.path.join(paths.layers(name), "root"))
    detach_below(os.path.join(paths.stage1, APP_ROOT.format(app=name).lstrip("/")))


def start_app(options: GlobalOptions, pod_id: str, app: str) -> None:
    _act(options, pod_id, app, "start")


def stop_app(options: GlobalOptions, pod_id: str, app: str, timeout: float | None = None) -> None:
    """Stop the app: its stop signal, then SIGKILL after ``timeout`` seconds (None: the app's own
    stop timeout, as its unit says)."""
    _act(options, pod_id, app, "stop", *([] if timeout is None else ["--timeout", f"{max(timeout, 0):g}"]))


def _act(options: GlobalOptions, pod_id: str, app: str, action: str, *extra: str) -> None:
    pod = find(options, pod_id)
    sandbox_spec(pod).app(app)  # a clear error for a name the pod does not have
    code = Stage1Client.of(options, pod.path).app(action, app, *extra)
    if code != 0:
        raise Stage1Failed(f"app {action} {app}", code)


def remove_app(options: GlobalOptions, pod_id: str, app: str) -> None:
    """Stop the app and take it out of the pod: its units, root and files."""
    pod = find(options, pod_id)
    with changing(pod):
        spec = sandbox_spec(pod)
        spec.app(app)
        code = Stage1Client.of(options, pod.path).app("rm", app)
        if code != 0:
            raise Stage1Failed(f"app rm {app}", code)
        with written(drop_app(pod, spec, app)):
            remove_app_files(pod, app)


def app_views(
    options: GlobalOptions, pod_id: str, app: str | None = None, *, recorded: bool = False
) -> list[AppView]:
    """The sandbox's apps (or the one named) as the pod's systemd and their reapers say; once the
    pod ended, as the reapers recorded (exited, or still created if it never started).
    ``recorded``: a running pod's from the records alone (created, running, exited; no PID)."""
    pod = find(options, pod_id)
    if pod.state() in (PodState.EXITED, PodState.EXITED_GARBAGE):
        names = [a.name for a in pod_apps(pod)]
        if app is not None and app not in names:
            raise NotFoundError(f"pod {pod.uuid} has no app {app!r}", hint=f"apps: {', '.join(names)}")
        return [recorded_app(pod, name) for name in names if app in (None, name)]
    spec = sandbox_spec(pod)
    if app is not None:
        spec.app(app)
    return [
        AppView.of(state) for state in Stage1Client.recorded(pod.path).app_states(app, recorded=recorded)
    ]
