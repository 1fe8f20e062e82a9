"""Where an app's volumes go, as data (issue #23, item 1).

A mount point is a path inside the app's root, and that root is the image's tree under a layer the
app itself writes: any component may be a link, absolute or relative, made by the image or by the
app while the pod runs. nspawn (``--bind``), machined (``BindMountMachine``) and systemd's mount
units resolve a target in the pod's root, so ``/data -> /nspod/bin`` put a user's volume onto
stage1's own programs. So nothing binds into an app's root by path: each volume is bound into the
pod's own tree (``staged``, a directory no app can reach), and ``volumes-<app>.service`` in the pod,
before the app, binds it on from there with ``/nspod/bin/mount-volumes`` (stage1/scripts/
mount_volumes.py), which resolves the target inside the app's root (openat2 RESOLVE_IN_ROOT) and
mounts onto the file descriptor it resolved: a tree changing meanwhile cannot move it out.
"""

from __future__ import annotations

from stage1.abi import APP_ROOT, AppSpec, PodSpec
from stage1.escape import command, path
from stage1.unitfile import Entry, section

MOUNT_VOLUMES = "/nspod/bin/mount-volumes"
# what nspod-security(7) says of volumes (packaging/gendocs.py)
DOC = (
    "A volume goes where the app's mount point leads inside the app's own root: every link on the way, "
    "absolute or relative, and every '..' is resolved there, never in the pod's or the host's tree, and "
    "the mount is made on what was resolved, so a tree the app changes meanwhile cannot move it. A mount "
    "point that leads to the app's root itself or into its /proc, /sys or /dev is refused (the pod ends "
    "with 254). With --private-users the pod's root is an unprivileged host user on its volumes and its "
    "writable layer too: what it writes there belongs to the pod's host range, never to host root. A "
    "volume shared with host root's IDs says so: --volume NAME,...,idmap=true (a pod file's idmap = true)."
)
_STAGED = "/opt/stage2/{app}/volumes/{index}"


def staged(app: str, index: int) -> str:
    """Where the app's ``index``-th mount's volume is bound in the pod's tree, before it goes on."""
    return _STAGED.format(app=app, index=index)


# masked paths under these are the app unit's (stage1/app_unit.py masks): systemd mounts the app's
# own /proc, /sys and /dev over whatever the pod's tree has there
UNIT_MASKED = ("/proc/", "/sys/", "/dev/")


def image_masks(app: AppSpec) -> tuple[str, ...]:
    """The app's masked paths in its image's tree, which its volumes unit covers in the pod's own
    mount namespace, before the app's start: the app and every command entered into it see them."""
    if app.privileged:
        return ()
    return tuple(p for p in app.masked_paths if not p.startswith(UNIT_MASKED))


def has_volumes_unit(app: AppSpec) -> bool:
    return bool(app.mounts or image_masks(app))


def shared_volumes(spec: PodSpec, app: AppSpec) -> list[tuple[str, str]]:
    """(host path, target) of the app's volumes of shared propagation (the CRI's bidirectional)."""
    sources = {v.name: v.source for v in spec.volumes if v.shared}
    return [(sources[volume], target) for volume, target, _ in app.mounts if volume in sources]


def volumes_unit_name(app: str) -> str:
    return f"volumes-{app}.service"


def mount_order(app: AppSpec) -> list[tuple[int, str]]:
    """The app's mounts as (index, target), outer ones first: ``/data`` before ``/data/logs``,
    whatever order the manifest gives."""
    indexed = [(index, target) for index, (_, target, _) in enumerate(app.mounts)]
    return sorted(indexed, key=lambda item: (len([p for p in item[1].split("/") if p]), item[0]))


# A target that cannot be had inside the app's root ends the pod with this code (nspod's own, as
# rkt's 254), the reason on its console; in an app sandbox the app alone does not start.
REFUSED = 254


def volumes_unit(app: AppSpec, *, sandbox: bool = False) -> list[Entry]:
    """``volumes-<app>.service``: the app's volumes onto their targets inside its root, then its
    masked paths covered, once, before the app's first start (a restarted app finds them in
    place); they are detached when it stops (an app sandbox's ``app rm``, the pod's end)."""
    root = APP_ROOT.format(app=app.name)
    pairs = [word for index, target in mount_order(app) for word in (staged(app.name, index), target)]
    masks = ("--mask", *image_masks(app)) if image_masks(app) else ()
    return section(
        "Unit",
        ("Description", f"{app.name}'s volumes"),
        ("DefaultDependencies", "no"),
        ("RequiresMountsFor", path(root)),  # its root (with --private-users a mount unit of the pod's)
        ("Conflicts", "shutdown.target"),
        ("Before", "shutdown.target"),
        *(() if sandbox else (("FailureAction", "exit-force"), ("FailureActionExitStatus", str(REFUSED)))),
    ) + section(
        "Service",
        ("Type", "oneshot"),
        ("RemainAfterExit", "yes"),
        ("StandardError", "journal+console"),
        ("ExecStart", command((MOUNT_VOLUMES, root, *pairs, *masks))),
        ("ExecStop", command((MOUNT_VOLUMES, "--unmount", root))),
    )
