"""The pod's networks on the host (what stage1/cni.py describes): its namespace, the CNI plugin
calls, the address translation, and the teardown. Subprocesses and /proc/sys only."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import json
import os
import shutil
import socket
import subprocess

from stage1 import netns
from stage1.abi import Error, PodPaths, PodSpec, PortSpec
from stage1.atomic import write_atomic
from stage1.cni import (
    CNI_PATH,
    IP,
    NETNS_DIR,
    NFT,
    PORTS_DIR,
    UNITS_DIR,
    Attachment,
    down_path,
    down_script,
    forward_target,
    netns_name,
    owner_path,
    plugin_config,
    plugin_env,
    plugin_type,
    pods_dir,
    port_key,
    read_attachments,
    runtime_dir,
    skip_dad,
)
from stage1.nat import (
    GUARD,
    SHARED_TABLE,
    Subnet,
    masquerade_chain,
    masquerade_subnets,
    nft_ruleset,
    shared_chains,
    shared_setup,
)


class NetworkError(Error):
    kind = "unavailable"  # stage0/errors.py ErrorKind
    hint = "see 'nspod status' of the pod, and the network's configuration in /etc/nspod/net.d"


def _plugin(kind: str) -> str:
    for directory in CNI_PATH:
        path = os.path.join(directory, kind)
        if kind and "/" not in kind and os.access(path, os.X_OK):
            return path
    raise NetworkError(
        f"no CNI plugin {kind!r} in {':'.join(CNI_PATH)}",
        hint="install Debian's containernetworking-plugins (make install does), or fix the net's type",
    )


def _run(argv: list[str], what: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise NetworkError(f"{what} failed: {(result.stderr or result.stdout).strip() or result.returncode}")
    return result  # type: ignore[no-any-return]


def _call(spec: PodSpec, index: int, plugin: str, command: str) -> dict[str, object]:
    assert spec.networks is not None
    net = spec.networks[index]
    env = {**os.environ, **plugin_env(command, spec, index, net)}
    result = subprocess.run(
        [plugin], input=plugin_config(net), env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        try:  # a CNI error is JSON on stdout: {"code", "msg", "details"}
            failure = json.loads(result.stdout)
            reason = f"{failure.get('msg', '')} {failure.get('details', '')}".strip()
        except ValueError:
            reason = (result.stderr or result.stdout).strip()
        raise NetworkError(f"network {net.name}: CNI {command} failed: {reason}")
    return json.loads(result.stdout) if result.stdout.strip() else {}


def check_ports(spec: PodSpec, paths: PodPaths) -> None:
    """Refuse a port another running pod forwards, or that something on the host has bound, before
    anything starts; claim the free ones for this pod (a file per port, under a lock: the pod's UUID
    and directory, whose locks tell whether it runs)."""
    os.makedirs(PORTS_DIR, exist_ok=True)
    with open(os.path.join(PORTS_DIR, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for port in spec.ports:
            for name in os.listdir(PORTS_DIR):
                protocol, _, rest = name.partition("-")
                address, _, number = rest.rpartition("-")
                if protocol != port.protocol or number != str(port.host_port):
                    continue
                if "any" not in (address, port_key(port).split("-")[1]) and address != port.host_ip:
                    continue
                with open(os.path.join(PORTS_DIR, name)) as file:
                    owner, _, where = file.read().strip().partition("\n")
                if owner != spec.uuid and _running(owner, where):  # else: stale
                    raise NetworkError(
                        f"host port {port.host_port}/{port.protocol} is forwarded to pod {owner} already",
                        hint="choose another host port: --port=NAME:HOSTPORT",
                    )
            _check_free(port)
        for port in spec.ports:
            with open(os.path.join(PORTS_DIR, port_key(port)), "w") as file:
                file.write(f"{spec.uuid}\n{paths.root}\n")


def _running(owner: str, pod_dir: str) -> bool:
    """Whether the pod that claimed a port runs, or is being started: a claim left by a starter
    killed before its pod started is free (#23 item 20). Its nspawn holds the pod's lock, its
    starter ``starting`` (stage0/pods/dirs.py); the kernel drops both with their holder."""
    if not pod_dir:  # a claim that names no directory (older nspod): its network's record decides
        return os.path.exists(runtime_dir(owner))
    paths = PodPaths(pod_dir)
    return any(_lock_held(path) for path in (paths.lock, paths.starting))


def _lock_held(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return False  # the pod moved on (exited, removed): not running
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _check_free(port: PortSpec) -> None:
    kind = socket.SOCK_STREAM if port.protocol == "tcp" else socket.SOCK_DGRAM
    addresses = [port.host_ip] if port.host_ip else ["0.0.0.0", "::"]
    for address in addresses:
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past connections' TIME_WAIT
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind((address, port.host_port))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise NetworkError(
                        f"host port {port.host_port}/{port.protocol} is in use on the host ({address})",
                        hint=f"see 'ss -lnp sport = :{port.host_port}', or choose another host port",
                    ) from None
                if error.errno != errno.EADDRNOTAVAIL:  # no IPv6 on this host: nothing to clash with
                    raise


def up(spec: PodSpec, paths: PodPaths, unit: str) -> tuple[Attachment, ...]:
    """Make the pod's namespace and join its networks; on any failure undo all of it. The
    teardown script is written first, so whatever happens after can be undone."""
    assert spec.networks is not None
    plugins = tuple(_plugin(plugin_type(net)) for net in spec.networks)
    here = runtime_dir(spec.uuid)
    os.makedirs(here, exist_ok=True)
    with open(owner_path(spec.uuid), "w") as file:  # whose it is, should the pod go without it
        file.write(pods_dir(paths.root) + "\n")
    os.makedirs(UNITS_DIR, exist_ok=True)
    for index, net in enumerate(spec.networks):
        with open(f"{here}/{index}.conf", "w") as file:
            file.write(plugin_config(net))
    write_atomic(down_path(spec.uuid), down_script(spec, plugins, unit))
    link = os.path.join(UNITS_DIR, unit)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    os.symlink(down_path(spec.uuid), link)
    try:
        if spec.ports:
            check_ports(spec, paths)
        netns.create(NETNS_DIR, netns_name(spec.uuid))
        attachments = []
        for index, net in enumerate(spec.networks):
            result = _call(spec, index, plugins[index], "ADD")
            attachments.append(Attachment(net.name, f"eth{index}", result))
        done = tuple(attachments)
        _skip_dad(
            frozenset(i for a in done if any(":" in x for x in a.addresses()) for i in a.host_interfaces())
        )
        if done:  # the loopback guard for every pod on a net, before any route_localnet (_forward):
            # a bridge keeps the route_localnet another pod's port set, and the table may be gone since
            _shared(masquerade_subnets(spec, done))
        if spec.ports:
            _forward(spec, done)
        write_atomic(paths.net, json.dumps([a.to_json() for a in done], indent=2), sync=False)
        return done
    except BaseException:
        down(spec.uuid)
        raise


def _skip_dad(interfaces: frozenset[str]) -> None:
    for name in interfaces:  # anything added later on the host's end goes without detection too
        with contextlib.suppress(OSError), open(f"/proc/sys/net/ipv6/conf/{name}/accept_dad", "w") as file:
            file.write("0")
    try:
        with open("/proc/net/if_inet6") as file:
            batch = skip_dad(file.read(), interfaces)
    except FileNotFoundError:  # no IPv6 on this host
        return
    if batch:
        _run(
            [IP, "-batch", "-"],
            "re-adding the host's IPv6 addresses without duplicate address detection",
            input=batch,
        )


def _shared(subnets: tuple[Subnet, ...]) -> None:
    """Make sure the shared table guards the host's loopback and masquerades for these subnets:
    one read when it does (the usual case), one batch where it does not yet (stage1/nat.py). A
    batch fails whole when another pod made a chain of it meanwhile: then what is still lacking."""
    failure = ""
    for _ in range(3):
        guard, missing = _lacking(subnets)
        if not guard and not missing:
            return
        made = subprocess.run(
            [NFT, "-f", "-"], input=shared_setup(missing, guard), capture_output=True, text=True
        )
        if made.returncode == 0:
            return
        failure = made.stderr.strip()
    raise NetworkError(f"the shared table inet {SHARED_TABLE} (nft) failed: {failure}")


def _lacking(subnets: tuple[Subnet, ...]) -> tuple[bool, tuple[Subnet, ...]]:
    """Whether the shared table lacks the guard, and the subnets it does not masquerade yet."""
    listed = subprocess.run([NFT, "list", "table", "inet", SHARED_TABLE], capture_output=True, text=True)
    chains = shared_chains(listed.stdout) if listed.returncode == 0 else frozenset()
    return GUARD not in chains, tuple(s for s in subnets if masquerade_chain(s) not in chains)


def _forward(spec: PodSpec, attachments: tuple[Attachment, ...]) -> None:
    target = forward_target(spec, attachments)
    if target is None or not target.addresses():
        raise NetworkError(
            "the pod's ports have nowhere to go: no network gave it an address",
            hint="forward ports to a pod on a network with addresses (--net=default)",
        )
    _run([NFT, "-f", "-"], "the pod's port forwarding (nft)", input=nft_ruleset(spec, attachments))
    # what the host sends to 127.0.0.1:PORT leaves through the pod's link with its loopback source
    # until masqueraded: allowed on that link only (rkt set it on the default route's interface);
    # what a pod sends to or from 127.x is dropped by the shared table's guard (stage1/nat.py)
    for name in target.host_interfaces():
        with contextlib.suppress(OSError), open(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "w") as f:
            f.write("1")


def down(uuid: str) -> None:
    """Run the pod's teardown script, if its network is still up (idempotent)."""
    script = down_path(uuid)
    if os.path.exists(script):
        subprocess.run(["/bin/sh", script], capture_output=True, check=False)
    else:  # cut short before its script was written: nothing but its configurations exist yet
        shutil.rmtree(runtime_dir(uuid), ignore_errors=True)


def attachments(paths: PodPaths) -> tuple[Attachment, ...]:
    """The networks a pod joined, as recorded at its start (none if it never started one)."""
    try:
        with open(paths.net) as file:
            return read_attachments(file.read())
    except (OSError, ValueError, KeyError):
        return ()
