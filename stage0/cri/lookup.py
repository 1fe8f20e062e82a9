"""The CRI's reads of the domain (stage0/api): a sandbox's pod and its apps as views, or nothing
where they are gone. Kubelet asks about sandboxes and containers long after their pods ended or
were removed, so here "not found" is an answer (None, {}), never an error; every other failure
still is one.
"""

from __future__ import annotations

import logging

from stage0.api.pods import pod_status
from stage0.api.sandbox import app_views
from stage0.api.views import AppState, AppView, PodView
from stage0.errors import Error, ErrorKind, kind_of
from stage0.options import GlobalOptions
from stage0.pods.dirs import PodState

log = logging.getLogger("nspod.cri")
LIVE = (AppState.STARTING, AppState.RUNNING, AppState.STOPPING)


def find_view(options: GlobalOptions, ident: str) -> PodView | None:
    """The sandbox's pod as it is now; None once it is gone."""
    try:
        return pod_status(options, ident, with_pid=False)
    except Error as error:
        if kind_of(error) is ErrorKind.NOT_FOUND:
            return None
        raise


def running(view: PodView | None) -> bool:
    return view is not None and view.state is PodState.RUNNING


def live_apps(options: GlobalOptions, view: PodView | None, *, recorded: bool = False) -> dict[str, AppView]:
    """The apps of a running sandbox by name, as its systemd says; {} once it ended (or when its
    systemd cannot say: the pod is going away). ``recorded``: as the records say (the CRI's
    created, running, exited), without asking the pod's systemd."""
    if view is None or not running(view):
        return {}
    try:
        return {app.name: app for app in app_views(options, view.uuid, recorded=recorded)}
    except Error as error:
        log.warning("cannot read the apps of pod %s: %s", view.uuid, error)
        return {}


def app_state(options: GlobalOptions, view: PodView | None, app: str, *, recorded: bool = False) -> AppView:
    """The app as it is now: from its running pod, else as its reaper recorded it (an ended
    sandbox's apps have all exited; one that never started is still created). An app whose pod is
    gone is gone too: exited, 255."""
    live = live_apps(options, view, recorded=recorded).get(app)
    if live is not None:
        return live
    if view is not None:
        try:
            return app_views(options, view.uuid, app)[0]
        except Error as error:
            log.debug("no state of app %s in pod %s: %s", app, view.uuid, error)
    return AppView(app, AppState.EXITED, 255, None, None, None, None)


def app_image(view: PodView | None, app: str) -> str:
    """The ID of the image the app runs, as its pod's manifest names it ("" when unknown)."""
    found = (a.image.id for a in (view.apps if view is not None else ()) if a.name == app)
    return next(found, None) or ""
