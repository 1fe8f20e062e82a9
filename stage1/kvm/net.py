"""A kvm pod's network on the host: the pod's namespace made and joined as any pod's
(stage1/network.py), then the guest's side of it set up there (stage1/kvm/netplan.py says what).
Subprocesses (``ip``, ``tc``) and one ``setns`` only.

The kvm flavor calls :func:`join` where an nspawn pod calls stage1/run.py ``join``, runs QEMU in
the pod's namespace (:func:`command_prefix` for a unit, :func:`enter_namespace` before
exec'ing in place) with :func:`netdev_args`, and puts :func:`guest_files` into the pod's tree.
The teardown is the pod's network's own (stage1/network.py ``down``): deleting the namespace
deletes its taps and tc rules with it.
"""

from __future__ import annotations

import ctypes
import json
import os
from typing import Any

from stage1 import mds, network
from stage1.abi import PodPaths, PodSpec
from stage1.atomic import write_atomic
from stage1.cni import IP, netns_name, netns_path, with_dns
from stage1.kvm.netplan import (
    GUEST_SCRIPT,
    GUEST_UNIT,
    GuestLink,
    check_network,
    guest_links,
    guest_script,
    guest_unit,
    netdev_args,
    netns_batch,
    tc_batch,
)
from stage1.kvm.qemu import Nic
from stage1.units import TreeFile

TC = "/usr/sbin/tc"
NSENTER = "/usr/bin/nsenter"
HOST_RESOLV = "/etc/resolv.conf"
CLONE_NEWNET = 0x40000000
LINKS_FILE = "kvm-net.json"  # in the pod directory: the guest's links as set up (netdev_args reads it)


class KvmNetworkError(network.NetworkError):
    hint = "see 'nspod status' of the pod; a kvm pod needs tc (iproute2) and /dev/net/tun on the host"


def _json(argv: list[str]) -> list[dict[str, Any]]:
    result = network._run(argv, " ".join(argv))
    return json.loads(result.stdout or "[]")  # type: ignore[no-any-return]


def _in_netns(uuid: str, program: str, batch: str, what: str) -> None:
    if batch:
        network._run([program, "-netns", netns_name(uuid), "-batch", "-"], what, input=batch)


def attach(spec: PodSpec) -> tuple[GuestLink, ...]:
    """The taps and the redirects beside the links CNI made in the pod's namespace; returns the
    links as the guest takes them (read before the namespace gives their addresses up)."""
    count = len(spec.networks or ())
    where = ["-netns", netns_name(spec.uuid), "-json"]
    links = guest_links(
        _json([IP, *where, "address", "show"]),
        _json([IP, *where, "-4", "route", "show", "table", "main"]),
        _json([IP, *where, "-6", "route", "show", "table", "main"]),
        count,
    )
    try:
        _in_netns(spec.uuid, IP, netns_batch(links), "the guest's taps (ip)")
        _in_netns(spec.uuid, TC, tc_batch(links), "the redirects between the pod's links and taps (tc)")
    except network.NetworkError as error:
        raise KvmNetworkError(error.message) from None
    return links


def join(spec: PodSpec, paths: PodPaths, unit: str) -> tuple[PodSpec, tuple[GuestLink, ...]]:
    """The kvm pod's network up, its guest's links ready for QEMU (recorded in the pod directory),
    and the spec with its DNS settled and its metadata service URL, as stage1/run.py ``join``
    gives an nspawn pod. ``--net=host`` is refused before anything is made."""
    check_network(spec.networks)
    joined = network.up(spec, paths, unit)
    try:
        links = attach(spec)
        write_atomic(os.path.join(paths.root, LINKS_FILE), links_json(links), sync=False)
        return mds.register(with_dns(spec, joined, os.path.exists(HOST_RESOLV)), paths, joined), links
    except BaseException:
        network.down(spec.uuid)
        raise


def links_json(links: tuple[GuestLink, ...]) -> str:
    return json.dumps(
        [
            {"index": link.index, "mac": link.mac, "mtu": link.mtu,
             "addresses": [a.cidr for a in link.addresses],
             "routes": [[r.dst, r.gateway, r.scope, r.metric, r.source, r.version] for r in link.routes]}
            for link in links
        ],
        indent=2,
    )  # fmt: skip


def recorded_links(paths: PodPaths) -> tuple[GuestLink, ...]:
    """The guest's links as :func:`join` recorded them (none: loopback alone, or not joined)."""
    from stage1.kvm.netplan import Address, Route

    try:
        with open(os.path.join(paths.root, LINKS_FILE)) as file:
            raw = json.load(file)
    except FileNotFoundError:
        return ()
    return tuple(
        GuestLink(
            int(link["index"]), str(link["mac"]), int(link["mtu"]),
            tuple(Address(a) for a in link["addresses"]),
            tuple(Route(r[0], r[1], r[2], int(r[3]), r[4], int(r[5])) for r in link["routes"]),
        )
        for link in raw
    )  # fmt: skip


def guest_files(spec: PodSpec, links: tuple[GuestLink, ...]) -> dict[str, TreeFile]:
    """What the pod's tree gets for its guest's network: the script, the unit running it, wanted
    by the pod's target, and every app requiring it and ordered after it (an app never starts on
    a network the guest has not set up; a failure fails the app, not silently)."""
    units = "etc/systemd/system"
    needs = "[Unit]\nRequires=" + GUEST_UNIT + "\nAfter=" + GUEST_UNIT + "\n"
    return {
        GUEST_SCRIPT: TreeFile(guest_script(links), 0o755),
        f"{units}/{GUEST_UNIT}": TreeFile(guest_unit()),
        f"{units}/pod.target.d/network.conf": TreeFile("[Unit]\nWants=" + GUEST_UNIT + "\n"),
        **{f"{units}/{app.name}.service.d/network.conf": TreeFile(needs) for app in spec.apps},
    }


def nics(links: tuple[GuestLink, ...]) -> tuple[Nic, ...]:
    """The VM's NICs (stage1/kvm/qemu.py VmPlan.nics), one per link."""
    args = netdev_args(links)
    return tuple(Nic(args[i + 1], args[i + 3]) for i in range(0, len(args), 4))


def command_prefix(spec: PodSpec) -> list[str]:
    """QEMU's command line starts with this: QEMU runs in the pod's namespace (it opens the taps
    there, and reaches nothing else), its unit does not. Not ``NetworkNamespacePath=``: that would
    put the unit's ExecStopPost= there too, and the network's teardown (stage1/cni.py down_script)
    must run in the host's namespace, where the pod's nftables table and CNI's host side are."""
    check_network(spec.networks)
    return [NSENTER, f"--net={netns_path(spec.uuid)}", "--"]


def enter_namespace(spec: PodSpec) -> None:
    """This process (about to exec QEMU in place, as pod@ does) into the pod's namespace."""
    check_network(spec.networks)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(netns_path(spec.uuid), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise KvmNetworkError(f"cannot enter {netns_path(spec.uuid)}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


__all__ = [
    "attach",
    "command_prefix",
    "enter_namespace",
    "guest_files",
    "join",
    "netdev_args",
    "nics",
    "recorded_links",
]
