"""Pod networks whose pod is gone: torn down by ``gc`` (stage1 verb ``sweep``).

A pod's network lives in /run (its record ``/run/nspod/net/<uuid>/``, its namespace
``/run/netns/nspod-<uuid>``), its pod in the data directory; the pod's own gc runs the teardown
before the pod goes. A network whose pod went without it (its teardown killed or failing, a pod
directory removed by hand or by an older nspod) had no owner left to ever remove it: every later
``ip netns``, port claim and IP lease still showed it. Each record names the pods directory of its
nspod (``pods``, stage1/cni.py owner_path), so a gc takes down the ones of its own directory
whose pod no longer exists there, and a namespace whose record is gone (its teardown ran, the
namespace outlived it).

A pod that runs or is being started never leaves ``run/`` (only gc moves an exited pod on): one
seen nowhere is gone, and a pod moving on meanwhile is an exited one, whose teardown is due anyway.
"""

from __future__ import annotations

import contextlib
import os

from stage1 import netns, network
from stage1.cni import NETNS_DIR, RUNTIME_DIR, netns_name, owner_path, runtime_dir

PREFIX = netns_name("")


def orphaned(uuid: str, owner: str, pods: str, places: list[str], exists: set[str]) -> bool:
    """Whether the network of pod ``uuid``, recorded as ``owner``'s, is one of ``pods``' whose pod
    is in none of its ``places`` (``exists``: the paths found). Pure."""
    if owner != pods:
        return False  # another data directory's pod: its own gc decides
    return not any(os.path.join(pods, place, uuid) in exists for place in places)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


def sweep(pods: str) -> list[str]:
    """Tear down the networks of ``pods``' pods that are gone, and the namespaces whose record is
    gone; the UUIDs of the networks taken down."""
    if os.geteuid() != 0:  # the networks are root's: a member of group nspod sees none of them
        return []
    pods = os.path.abspath(pods)
    places = _listdir(pods)  # the state directories, .removing among them
    swept = []
    for uuid in _listdir(RUNTIME_DIR):
        try:
            with open(owner_path(uuid)) as file:
                owner = file.read().strip()
        except OSError:
            continue  # not a pod's record (ports, ipam, unit), or made by an older nspod
        paths = {os.path.join(pods, place, uuid) for place in places}
        if orphaned(uuid, owner, pods, places, {p for p in paths if os.path.lexists(p)}):
            network.down(uuid)
            swept.append(uuid)
    for name in _listdir(NETNS_DIR):  # its record is written before it is made, removed after it
        if name.startswith(PREFIX) and not os.path.exists(runtime_dir(name.removeprefix(PREFIX))):
            with contextlib.suppress(OSError):  # in use by a process of its own: not a pod's any more
                netns.delete(os.path.join(NETNS_DIR, name))
            swept.append(name.removeprefix(PREFIX))
    return swept
