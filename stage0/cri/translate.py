"""CRI configs as nspod requests (pure): a PodSandboxConfig as the PodRequest of an app sandbox,
a ContainerConfig as the AppRequest of one app, each then handed to security.py (crisec's part)
for its security context and resources."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import grpc

from stage0.cri import security
from stage0.cri.proto import api_pb2
from stage0.cri.status import Failure, invalid
from stage0.host.mounts import host_shared
from stage0.pods.dns import DnsRequest
from stage0.pods.network import PortRequest
from stage0.pods.requests import AppRequest, PodRequest
from stage1.abi import VolumeSpec

NODE = api_pb2.NamespaceMode.NODE
_ID_PREFIX = re.compile(r"sha512-[0-9a-f]{1,128}")
_DIGEST = re.compile(r"(sha256:)?[0-9a-f]{64}")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62}[A-Za-z0-9])?")


def host_network(config: api_pb2.PodSandboxConfig) -> bool:
    return bool(config.linux.security_context.namespace_options.network == NODE)


def sandbox_request(config: api_pb2.PodSandboxConfig) -> PodRequest:
    """The sandbox's pod: empty, its host name, DNS and network; its security context by crisec."""
    meta = config.metadata
    if not meta.name or not meta.namespace or not meta.uid:
        raise invalid("PodSandboxConfig.metadata needs a name, a namespace and a uid")
    hostname = config.hostname or None
    if hostname is not None and not _HOSTNAME.fullmatch(hostname):
        raise invalid(f"hostname {hostname!r} is not a valid host name")
    dns = DnsRequest(
        servers=tuple(config.dns_config.servers),
        search=tuple(config.dns_config.searches),
        options=tuple(config.dns_config.options),
    )
    request = PodRequest(
        apps=(),
        hostname=None if host_network(config) else hostname,
        dns=dns if config.HasField("dns_config") else DnsRequest(),
        nets=("host",) if host_network(config) else (),
        ports=() if host_network(config) else port_requests(config),
        annotations=tuple(sorted(_appc_annotations(config.annotations))),
        cgroup_parent=cgroup_parent(config.linux.cgroup_parent),
    )
    return security.pod_security(config, request)


# a systemd slice name (kubelet's systemd cgroup driver: kubepods-burstable-pod<uid>.slice), whose
# parents (one per dash) systemd makes itself; no "/", escapes, empty dash parts or "..": it reaches systemd
_SLICE = re.compile(r"[A-Za-z0-9_:.]+(?:-[A-Za-z0-9_:.]+)*\.slice")


def cgroup_parent(name: str) -> str:
    """The host slice the sandbox's pod unit runs in ("": machine.slice), checked."""
    if name.startswith("/"):  # kubelet's cgroupfs driver: a path no systemd unit can be put at
        raise invalid(
            f"cgroup parent {name!r} is a cgroupfs path: nspod runs pods in systemd slices"
            " (run kubelet with --cgroup-driver=systemd: parents such as kubepods-pod<uid>.slice)"
        )
    if name and (len(name) > 255 or ".." in name or not _SLICE.fullmatch(name)):
        raise invalid(f"cgroup parent {name!r} is not a systemd slice name (kubepods-pod<uid>.slice)")
    return name


PROTOCOLS = {api_pb2.Protocol.TCP: "tcp", api_pb2.Protocol.UDP: "udp"}


def port_requests(config: api_pb2.PodSandboxConfig) -> tuple[PortRequest, ...]:
    """The sandbox's port mappings with a host port, by number (kubelet sends the others too)."""
    requests = []
    for mapping in config.port_mappings:
        if mapping.host_port <= 0:
            continue
        protocol = PROTOCOLS.get(mapping.protocol)
        if protocol is None or not 0 < mapping.container_port < 65536 or mapping.host_port >= 65536:
            raise invalid(f"port mapping {mapping.host_port} → {mapping.container_port} is not forwardable")
        requests.append(
            PortRequest(
                name=f"{protocol}-{mapping.container_port}-{mapping.host_port}",
                host_port=mapping.host_port,
                host_ip=mapping.host_ip,
                port=mapping.container_port,
                protocol=protocol,
            )
        )
    return tuple(requests)


def _appc_annotations(annotations: Any) -> list[tuple[str, str]]:
    """The pod's annotations whose names appc takes (ACIdentifier), for the metadata service."""
    return [(k, v) for k, v in annotations.items() if re.fullmatch(r"[a-z0-9]+([-._~/][a-z0-9]+)*", k)]


def app_name(container_name: str, container_id: str) -> str:
    """The app's name in the pod: the container's, made an appc name, with a piece of its ID (two
    attempts of one container live side by side)."""
    # cut, then stripped: a cut may end on a dash, which would make "--" before the ID
    base = re.sub(r"[^a-z0-9]+", "-", container_name.lower()).strip("-")[:40].rstrip("-") or "app"
    return f"{base}-{container_id[:8]}"


def image_argument(image: str) -> str:
    """A CRI image (a reference, or an ID as ListImages gives it) as nspod's image argument."""
    if not image:
        raise invalid("ContainerConfig.image.image is empty")
    if (
        _ID_PREFIX.fullmatch(image)
        or "://" in image
        or image.startswith(("oci:", "oci-archive:", "docker-archive:"))
    ):
        return image
    return f"docker://{image}"


def argv(config: api_pb2.ContainerConfig) -> tuple[str | None, tuple[str, ...] | None]:
    """Kubernetes' rule as (exec, args) of an AppRequest: ``command`` replaces the image's
    Entrypoint (and drops its Cmd), ``args`` replace its Cmd."""
    command, args = list(config.command), list(config.args)
    if command:
        return command[0], (*command[1:], *args)
    if args:
        return None, tuple(args)
    return None, None


def bidirectional(config: api_pb2.ContainerConfig, host_path: str, shared: Callable[[str], bool]) -> None:
    """A mount whose container's mounts reach the host asks for the host's root (what kubelet
    allows a privileged container alone), from a host path mounted shared (what containerd asks:
    else nothing the container mounts could reach the host)."""
    if not config.linux.security_context.privileged:
        raise invalid(f"mount {host_path!r}: bidirectional propagation is for a privileged container alone")
    if not shared(host_path):
        raise Failure(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"mount {host_path!r}: bidirectional propagation needs a host path on a shared mount",
            hint=f"make it one: mount --bind {host_path} {host_path}; mount --make-rshared {host_path}",
        )


def host_volumes(
    config: api_pb2.ContainerConfig, container_id: str, is_shared: Callable[[str], bool] = host_shared
) -> tuple[tuple[VolumeSpec, ...], tuple[tuple[str, str, bool], ...]]:
    """The container's host-path mounts as pod volumes (named for the container) and app mounts."""
    volumes, mounts = [], []
    for index, mount in enumerate(config.mounts):
        if not mount.host_path.startswith("/") or not mount.container_path.startswith("/"):
            raise invalid(
                f"mount {mount.host_path!r} → {mount.container_path!r}: both paths must be absolute"
            )
        name = f"cri-{container_id[:12]}-{index}"
        shared = mount.propagation == api_pb2.MountPropagation.PROPAGATION_BIDIRECTIONAL
        if shared:
            bidirectional(config, mount.host_path, is_shared)
        volumes.append(
            VolumeSpec(
                name=name, kind="host", source=mount.host_path, read_only=mount.readonly, shared=shared
            )
        )
        mounts.append((name, mount.container_path, bool(mount.readonly)))
    return tuple(volumes), tuple(mounts)


def container_request(
    config: api_pb2.ContainerConfig,
    sandbox: api_pb2.PodSandboxConfig,
    container_id: str,
    image: Any,
) -> tuple[AppRequest, tuple[VolumeSpec, ...]]:
    """The container's app (and the pod volumes its mounts need)."""
    if not config.metadata.name:
        raise invalid("ContainerConfig.metadata.name is empty")
    exec_, args = argv(config)
    volumes, mounts = host_volumes(config, container_id)
    request = AppRequest(
        image=image_argument(config.image.image),
        name=app_name(config.metadata.name, container_id),
        exec=exec_,
        args=args,
        environment=tuple((e.key, e.value) for e in config.envs if e.key),
        working_dir=config.working_dir or None,
        mounts=mounts,
    )
    return security.container_security(config, sandbox, image, request), volumes
