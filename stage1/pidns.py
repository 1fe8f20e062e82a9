"""An app in a PID namespace of its own (the CRI's pid CONTAINER): its unit and every command
entered into it run through nspod-pidns (stage1/helpers/pidns.c), since systemd 252 has no
PrivatePIDs=.

The helper runs inside the app's whole confinement (root, user, seccomp filter, bounding set,
NoNewPrivileges, hidden and read-only paths), which the unit widens by just what the helper
needs: CAP_SYS_ADMIN and CAP_SETPCAP (ambient for an app that is not root), the six calls it makes
(unshare, setns, mount, umount2, open_tree, move_mount) and PID and mount namespaces. The helper
gives each back before it execs the app: this module says which (pure), from the app's profile.
"""

from __future__ import annotations

import os

from stage1.abi import AppSpec

OWN = "container"  # AppSpec.pid_namespace: a PID namespace of the app's own ("": the pod's)
HELPER_IN_POD = "/nspod/bin/pidns"  # in the pod's tree (stage1/units.py), when the host has one
HELPER = "/.nspod-pidns"  # in the app's root, bound read-only from the pod's
# where `make helpers` builds it (beside this file); a pod gets it only where it was built
BUILT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers", "nspod-pidns")
CALLS = ("unshare", "setns", "mount", "umount2", "open_tree", "move_mount")
# capabilities(7) numbers
CAPABILITY_NUMBERS = {"CAP_SETPCAP": 8, "CAP_SYS_ADMIN": 21}
NEEDED = tuple(CAPABILITY_NUMBERS)
# what nspod's default filter (stage1/seccomp.py) denies of CALLS: all of them (@mount, unshare, setns)
MOUNT_GROUP = frozenset({"mount", "umount2", "open_tree", "move_mount"})  # of systemd's @mount
ERRNO = {"EPERM": 1, "EACCES": 13, "ENOSYS": 38, "EINVAL": 22}


def own_pid(app: AppSpec) -> bool:
    return app.pid_namespace == OWN


def own_directory(app: AppSpec) -> bool:
    """Whether the helper enters the app's working directory (any but its root): as the app, after
    systemd has dropped its privileges, since systemd 252 enters WorkingDirectory= with all of them
    and so follows what the app could not (an image's link to /proc/1/root: the pod's own tree).
    Not for a privileged app: it holds every capability itself."""
    return not app.privileged and (app.working_directory or "/") != "/"


def needs_helper(app: AppSpec) -> bool:
    return own_pid(app) or own_directory(app)


def _filter_lines(settings: list[tuple[str, str]]) -> list[str]:
    return [value for key, value in settings if key == "SystemCallFilter"]


def denied(settings: list[tuple[str, str]]) -> tuple[str, ...]:
    """The helper's calls the app's own filter denies (systemd's merge: the first line decides
    allow- or deny-list, later lines add to or take from it). ``@mount`` is known by its members
    here; another group naming one of these calls is not seen (the app then keeps that call, as
    capabilities alone guard it)."""
    lines = _filter_lines(settings)
    if not lines:
        return ()

    def names(line: str) -> set[str]:
        words = set(line.removeprefix("~").split())
        return words | (MOUNT_GROUP if "@mount" in words else set())

    allow_list = not lines[0].startswith("~")
    listed: set[str] = set()
    for line in lines:
        if line.startswith("~") == (not allow_list):  # the same kind as the first: adds
            listed |= names(line)
        else:
            listed -= names(line)
    if allow_list and "@known" in listed:  # every call, less the deny lines that follow
        return tuple(c for c in CALLS if c not in listed - {"@known"} and _denied_after(c, lines))
    return tuple(c for c in CALLS if (c not in listed) == allow_list)


def _denied_after(call: str, lines: list[str]) -> bool:
    return any(call in line.removeprefix("~").split() for line in lines[1:] if line.startswith("~"))


def widened(app: AppSpec, settings: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The app's unit settings (stage1/app_unit.py profile) with what the helper needs; the
    same settings for an app in the pod's PID namespace (its working directory the helper's, if any)."""
    if not own_pid(app):
        if not own_directory(app):
            return settings
        chdir = [(k, "/" if k == "WorkingDirectory" else v) for k, v in settings]
        return [*chdir, ("BindReadOnlyPaths", f"{HELPER_IN_POD}:{HELPER}")]
    out = []
    for key, value in settings:
        if key == "CapabilityBoundingSet":
            value = " ".join(dict.fromkeys((*value.split(), *NEEDED)))
        elif key == "RestrictNamespaces" and value == "yes":
            value = "pid mnt"  # the helper's own two; stacked filter restricts them again
        elif key == "WorkingDirectory":
            value = "/"  # entered by the helper (--chdir), as the app
        out.append((key, value))
    if _filter_lines(settings):
        out.append(("SystemCallFilter", " ".join(CALLS)))  # out of a deny-list, into an allow-list
    if app.user != 0:  # (privileged or not: exec gives a user that is not root no capability)
        out.append(("AmbientCapabilities", " ".join(NEEDED)))
    out.append(("BindReadOnlyPaths", f"{HELPER_IN_POD}:{HELPER}"))
    return out


def given_back(app: AppSpec, settings: list[tuple[str, str]]) -> list[str]:
    """The helper's options for an app whose profile is ``settings`` (unwidened): what to give
    back before the app runs."""
    # (an app that is not root had them as ambient ones, which the helper always clears: exec
    # gives it none then, as before; its bounding set is what it had)
    bounding = dict(settings).get("CapabilityBoundingSet")
    kept = set(bounding.split()) if bounding is not None else set(NEEDED)
    drop = [str(n) for name, n in CAPABILITY_NUMBERS.items() if name not in kept]
    errno = dict(settings).get("SystemCallErrorNumber", "EPERM")
    calls = denied(settings)
    restrict = dict(settings).get("RestrictNamespaces") == "yes"
    return [
        *([f"--drop={','.join(drop)}"] if drop else []),
        *([f"--deny={','.join(calls)}", f"--errno={ERRNO.get(errno, 1)}"] if calls else []),
        *(["--restrict"] if restrict else []),
    ]


def wrapped(
    app: AppSpec, settings: list[tuple[str, str]], argv: tuple[str, ...], join: int = 0
) -> tuple[str, ...]:
    """``argv`` run through the helper (``join``: the app's main PID, for a command entered into
    it); ``argv`` itself for an app in the pod's PID namespace."""
    chdir = (f"--chdir={app.working_directory}",) if own_directory(app) else ()
    if not own_pid(app):
        return (HELPER, "--no-pidns", *chdir, "--", *argv) if chdir else argv
    return (HELPER, *([f"--join={join}"] if join else []), *given_back(app, settings), *chdir, "--", *argv)
