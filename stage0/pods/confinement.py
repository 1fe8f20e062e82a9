"""An orchestrator's confinement of an app (the CRI's security context, as a
:class:`~stage0.requests.Confinement`) applied over the app the planner made of its image, and
the pod's own kernel settings checked (pure: the image tree is the planner's look-up protocol).

The CRI states an app's confinement whole, where nspod's own flags adjust the image's isolators
one by one: so the confinement replaces those parts of the planned app, and adds nothing the
orchestrator did not ask for.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from stage0.errors import UsageError
from stage0.images.tree import ImageTree
from stage0.pods.requests import AppRequest, Confinement
from stage1.abi import AppSpec

# The kernel settings a pod has of its own (its IPC namespace; net.* comes with a network of its
# own): anything else would change the host
IPC_SYSCTL = re.compile(
    r"kernel\.(shm(all|max|mni)|shm_rmid_forced|msg(max|mnb|mni)|sem)|fs\.mqueue\.[a-z_]+"
)
NET_SYSCTL = re.compile(r"net\.[a-z0-9_.-]+")


def sysctl_problem(key: str, own_network: bool) -> str | None:
    """Why the pod may not set ``key`` (None: it may): a key of no namespace of the pod's own would
    change the host."""
    if IPC_SYSCTL.fullmatch(key):
        return None
    if NET_SYSCTL.fullmatch(key):
        return None if own_network else f"sysctl {key} is the host's: the pod shares the host's network"
    return f"sysctl {key} is not the pod's own: setting it would change the host"


def pod_sysctl(settings: tuple[tuple[str, str], ...], own_network: bool) -> tuple[tuple[str, str], ...]:
    for key, value in settings:
        if problem := sysctl_problem(key, own_network):
            raise UsageError(
                problem,
                hint="a pod has its own kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and, with "
                "a network of its own, net.* settings",
            )
        if "\n" in value or not value.strip():
            raise UsageError(f"sysctl {key}: {value!r} is not a value", hint="one line, not empty")
    return tuple(sorted(dict(settings).items()))


def confined(app: AppSpec, request: AppRequest, tree: ImageTree) -> AppSpec:
    """``app`` (planned from its image and isolators) under the request's confinement, if any."""
    given = request.confinement
    if given is None:
        return app
    return dataclasses.replace(app, **_fields(app, given), **_groups(app, request, given, tree))


def _fields(app: AppSpec, given: Confinement) -> dict[str, Any]:
    relaxed = list(app.relaxed)
    if given.no_new_privileges is False:
        relaxed.append("no-new-privileges")  # rkt's implied rule yields to the orchestrator's word
    fields: dict[str, Any] = {
        "privileged": given.privileged,
        "capabilities": None,  # nspod's default set, with the orchestrator's additions and removals
        "capabilities_added": given.capabilities_added,
        "capabilities_removed": given.capabilities_dropped,
        "no_new_privileges": bool(given.no_new_privileges),
        "masked_paths": given.masked_paths,
        "readonly_paths": given.readonly_paths,
        "relaxed": tuple(dict.fromkeys(relaxed)),
        "pid_namespace": "container" if given.own_pid_namespace else "",
    }
    if given.privileged or given.seccomp_mode:  # else the image's isolator or nspod's default filter
        mode = "unconfined" if given.privileged else given.seccomp_mode
        fields |= {
            "seccomp_mode": mode,
            "seccomp_set": given.seccomp_set,
            "seccomp_errno": given.seccomp_errno,
        }
    return fields


def _groups(app: AppSpec, request: AppRequest, given: Confinement, tree: ImageTree) -> dict[str, Any]:
    """The user's groups as docker and the CRI give them: its primary group from the image's
    /etc/passwd when none was asked for, and the groups /etc/group lists it in besides the
    supplementary groups asked for."""
    if not given.image_groups:
        return {}
    user = request.user if request.user is not None else str(app.user)
    group = app.group
    if request.user is not None and request.group is None:  # the user's own, else root's (docker's)
        group = tree.primary_group(user) or 0
    extra = [g for g in tree.member_of(user) if g not in app.supplementary_gids and g != group]
    return {"group": group, "supplementary_gids": (*app.supplementary_gids, *extra)}
