"""A pod in full, for ``nspod inspect``: its read-model view (stage0/api/views.py) and what the
view leaves out — each app's start and end, the ports it forwards, its host name, annotations and
the stage1 ABI it was written for — from the pod's spec and its reapers' records."""

from __future__ import annotations

import os
from dataclasses import dataclass

from stage0.api.views import AppState, AppView, PodView, pod_view, recorded_app
from stage0.options import GlobalOptions
from stage0.pods.dirs import Pod, PodNotFound, Pods, PodState
from stage1.abi import Error, PodPaths, PodSpec, PortSpec


@dataclass(frozen=True, slots=True)
class PodDetails:
    view: PodView
    apps: tuple[AppView, ...]  # in the manifest's order, as view.apps
    spec: PodSpec | None  # None: a pod whose spec is not written yet (or broken)
    finished: float | None  # when its last app ended, for a pod that exited

    @property
    def ports(self) -> tuple[PortSpec, ...]:
        return self.spec.ports if self.spec else ()


def pod_details(options: GlobalOptions, pod_id: str) -> PodDetails:
    pod = Pods(options.dir).find(pod_id)
    try:
        return details(pod)
    except FileNotFoundError:  # gc or rm removed it while we read it
        raise PodNotFound(f"pod {pod_id} was removed meanwhile") from None


def details(pod: Pod) -> PodDetails:
    view = pod_view(pod)
    apps = tuple(_app(pod, view, app.name) for app in view.apps)
    ends = [app.exited for app in apps if app.exited is not None]
    return PodDetails(view, apps, _spec(PodPaths(pod.path)), max(ends) if view.exited and ends else None)


def _app(pod: Pod, view: PodView, name: str) -> AppView:
    """What the app's reaper recorded; an app of a running pod that has no exit code runs."""
    recorded = recorded_app(pod, name)
    if view.exited or name in pod.app_status():
        return recorded
    state = AppState.RUNNING if view.state is PodState.RUNNING else AppState.CREATED
    return AppView(name, state, None, None, recorded.started, None, None)


def _spec(paths: PodPaths) -> PodSpec | None:
    if not os.path.exists(paths.spec):
        return None
    try:
        with open(paths.spec) as file:
            return PodSpec.from_json(file.read())
    except (OSError, ValueError, Error):
        return None
