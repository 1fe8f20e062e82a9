"""A prepared pod's directory, as every flavor reads and lays it out: its spec, its stage1 tree,
its apps' profiles, status and volume directories, and the host unit it records."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable

from stage1.abi import Error, PodPaths, PodSpec, VolumeSpec
from stage1.app_unit import HIDDEN, described
from stage1.atomic import write_atomic
from stage1.stdio import Stdio
from stage1.systemd import Systemd, UnitNotFound
from stage1.tree import host_systemd_version, write_tree
from stage1.units import Socket, tree

HOST_RESOLV = "/etc/resolv.conf"


def load(pod_dir: str) -> tuple[PodSpec, PodPaths]:
    paths = PodPaths(pod_dir)
    try:
        with open(paths.spec) as file:
            return PodSpec.from_json(file.read()), paths
    except (OSError, ValueError) as error:
        raise Error(
            f"cannot read the pod spec in {pod_dir}: {error}", hint="is this a prepared pod?"
        ) from None


def host_hidden() -> tuple[str, ...]:
    """The kernel paths to hide from apps that this host has (the host's kernel is the pod's)."""
    return tuple(p for p in HIDDEN if os.path.exists(p))


def prepare_dirs(
    spec: PodSpec, paths: PodPaths, sockets: list[Socket] | None = None, stdio: Stdio = Stdio.JOURNAL
) -> None:
    version = host_systemd_version()
    hidden = host_hidden()
    # the pod dir is group nspod's to read (stage0/host/access.py); the pod's file systems are not
    os.makedirs(os.path.dirname(paths.stage1), mode=0o700, exist_ok=True)
    write_tree(paths.stage1, tree(spec, sockets, systemd_version=version, stdio=stdio, hidden=hidden))
    write_profiles(spec, paths, hidden)
    os.makedirs(paths.status, exist_ok=True)
    if spec.sandbox:
        os.makedirs(paths.io, exist_ok=True)  # bound at boot: a pooled run's app relays through it
    for volume in spec.volumes:
        make_volume(paths, volume, spec.private_users)
    for app in spec.apps:
        os.makedirs(paths.upper(app.name), exist_ok=True)
        if spec.private_users is not None:  # the overlay's work dir, which the pod mounts itself
            os.makedirs(os.path.join(paths.layers(app.name), "work"), exist_ok=True)
            # the writable layer is bound as it is (stage1/nspawn/service.py userns_layers): the pod's root
            # (its host user) owns it, and what it writes there is that user's on disk
            for directory in ("", "upper", "work"):
                os.chown(
                    os.path.join(paths.layers(app.name), directory), spec.private_users, spec.private_users
                )
    open(paths.lock, "a").close()


def write_profiles(spec: PodSpec, paths: PodPaths, hidden: tuple[str, ...]) -> None:
    """Each app's effective confinement, as ``status`` shows it (profile.json)."""
    profiles = {app.name: described(app, hidden) for app in spec.apps}
    write_atomic(paths.profile, json.dumps(profiles, indent=2, sort_keys=True), sync=False)


def make_volume(paths: PodPaths, volume: VolumeSpec, private_users: int | None = None) -> None:
    """An empty volume's directory, made once with its owner and mode (a host volume is the host's).
    In a pod with its own user range (``private_users``) the owner is that range's, unless the
    volume is ID-mapped (``idmap``), where IDs on disk are those inside."""
    if volume.kind == "empty" and not os.path.isdir(paths.volume(volume.name)):
        shift = private_users if private_users is not None and not volume.idmap else 0
        os.makedirs(paths.volume(volume.name))
        os.chown(paths.volume(volume.name), shift + volume.uid, shift + volume.gid)
        os.chmod(paths.volume(volume.name), volume.mode)


def stop_unit(paths: PodPaths, ending: Callable[[Systemd, str], None]) -> int:
    """A flavor's ``stop``: ``ending`` ends the pod's host unit (its name as the pod recorded it),
    then a failed unit is reset; 0, also for a pod never started or a unit unloaded meanwhile."""
    try:
        with open(paths.unit) as file:
            name = file.read().strip()
    except FileNotFoundError:
        return 0  # never started
    with Systemd() as systemd, contextlib.suppress(UnitNotFound):  # ended and unloaded meanwhile
        ending(systemd, name)
        if systemd.status(name).active_state == "failed":
            systemd.reset_failed(name)
    return 0
