"""The CRI's security contexts, namespace options, sysctls and resources as nspod requests (pure,
but for reading a Localhost seccomp profile from the node's disk).

``pod_security`` gets the sandbox's config and the PodRequest translate.py made; ``container_security``
the container's, its sandbox's, the image's configuration and the AppRequest. Each returns the
request with what the security context and resources ask for, or raises a clear
INVALID_ARGUMENT (a request the CRI says a runtime must refuse) or UNIMPLEMENTED (what nspod
cannot give yet). What Kubernetes means, after containerd's and CRI-O's reading of it:

* a container's capabilities are nspod's default set (Docker's and containerd's 14) with the
  added ones, less the dropped ones, "ALL" meaning every one; a privileged container has them
  all, no seccomp filter and the kernel's paths unmasked, in a sandbox that said privileged;
* seccomp "" and Unconfined are no filter (the CRI: "Default: '', which is identical with
  unconfined"), RuntimeDefault and docker/default nspod's own filter, Localhost a Docker/OCI
  JSON profile on the node (stage0/cri/seccomp_profile.py);
* run_as_group needs run_as_user or run_as_username; a user without a group gets its primary
  group from the image's /etc/passwd, and the groups /etc/group lists it in join the
  supplemental ones (the planner reads the image: stage0/confinement.py);
* a sandbox's host network is --net=host, its host IPC the host's IPC namespace for each of its
  containers (stage1/namespaces.py); its sysctls are the pod's own (kernel.shm* … with an IPC
  namespace of its own, net.* with a network of its own); every CRI sandbox keeps every
  capability in its bounding set, since its containers may add any, each narrowed by its own unit.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable
from typing import Any

import grpc

from stage0.cri.proto import api_pb2
from stage0.cri.seccomp_profile import profile_filter
from stage0.cri.status import Failure, invalid
from stage0.host.executor import pidns_helper_built
from stage0.pods.confinement import IPC_SYSCTL, sysctl_problem
from stage0.pods.requests import AppRequest, Confinement, PodRequest, parse_isolator_flag
from stage0.schema.isolators import Isolator

NODE, CONTAINER = api_pb2.NamespaceMode.NODE, api_pb2.NamespaceMode.CONTAINER
RUNTIME_DEFAULT = ("runtime/default", "docker/default")
UNCONFINED = ("", "unconfined")
LOCALHOST = "localhost/"
ALL = "ALL"


def _linux_security(config: Any) -> Any:
    """The message's linux.security_context (an empty one where the request has none)."""
    return config.linux.security_context


def _unsupported(what: str) -> Failure:
    return Failure(
        grpc.StatusCode.UNIMPLEMENTED,
        f"{what} is not supported by nspod yet",
        hint="run the pod with the pod's own namespaces (see the README's CRI section)",
    )


def _namespaces(options: Any, *, host_pid: bool = False) -> None:
    """The node's PID namespace is a hostPID sandbox's alone (``host_pid``), whose containers run as
    host units (stage1/fly); a container's own (CONTAINER, what kubelet asks for every pod that does
    not share its process namespace) is given by nspod-pidns (stage1/pidns.py)."""
    if options.pid == NODE and not host_pid:
        raise invalid("a container asks for the node's PID namespace in a sandbox that did not (hostPID)")
    if options.pid == api_pb2.NamespaceMode.TARGET:
        raise _unsupported("another container's PID namespace (TARGET)")


def host_pid(config: api_pb2.PodSandboxConfig) -> bool:
    """The sandbox asks for the node's PID namespace (hostPID): its containers run as host units."""
    return bool(_linux_security(config).namespace_options.pid == NODE)


def pod_security(config: api_pb2.PodSandboxConfig, request: PodRequest) -> PodRequest:
    security = _linux_security(config)
    options = security.namespace_options
    _namespaces(options, host_pid=host_pid(config))
    if security.HasField("run_as_group") and not security.HasField("run_as_user"):
        raise invalid("the sandbox's run_as_group is set without run_as_user")
    host_network, host_ipc = options.network == NODE, options.ipc == NODE
    sysctl = tuple(sorted(config.linux.sysctls.items()))
    for key, _ in sysctl:
        if problem := sysctl_problem(key, own_network=not host_network):
            raise invalid(problem)
        if host_ipc and IPC_SYSCTL.fullmatch(key):
            raise invalid(f"sysctl {key} is the host's: the sandbox shares the host's IPC namespace")
    nets = ("host",) if host_network else request.nets
    # each container gets the filter its own request asks for, and no other over it (nspawn's)
    return dataclasses.replace(
        request, nets=nets, sysctl=sysctl, capabilities=(ALL,), app_filters=True,
        host_pid=host_pid(config), host_ipc=host_ipc,
    )  # fmt: skip


def container_security(
    config: api_pb2.ContainerConfig,
    sandbox: api_pb2.PodSandboxConfig,
    image: Any,
    request: AppRequest,
    *,
    read: Callable[[str], str] | None = None,
    helper: Callable[[], bool] | None = None,
) -> AppRequest:
    """``image``: the image's configuration, unused (the planner resolves names in the image's
    own tree); ``read``: how a Localhost seccomp profile is read (the node's file by default);
    ``helper``: whether nspod-pidns is built (asked of the disk by default)."""
    security = _linux_security(config)
    _namespaces(security.namespace_options, host_pid=host_pid(sandbox))
    # a container's IPC namespace is its sandbox's (the host's in a hostIPC sandbox): the host's
    # for a container alone cannot be given
    if security.namespace_options.ipc == NODE != _linux_security(sandbox).namespace_options.ipc:
        raise invalid("a container in the host's IPC namespace needs a sandbox in it (its ipc NODE)")
    privileged = security.privileged
    if privileged and not _linux_security(sandbox).privileged:
        raise invalid(
            "a privileged container needs a privileged sandbox (its security context's privileged)"
        )
    own_pid = security.namespace_options.pid == CONTAINER
    if own_pid and not (helper or pidns_helper_built)():
        raise Failure(
            grpc.StatusCode.FAILED_PRECONDITION,
            "a PID namespace of the container's own needs nspod-pidns, which is not built here",
            hint="make helpers (stage1/helpers/pidns.c)",
        )
    user, group = _identity(security)
    added, dropped = _capabilities(security.capabilities)
    confinement = Confinement(
        privileged=privileged,
        capabilities_added=added,
        capabilities_dropped=dropped,
        **({} if privileged else _seccomp(security, added, dropped, read or _read_file)),
        no_new_privileges=security.no_new_privs,
        masked_paths=tuple(_absolute(p, "masked path") for p in security.masked_paths),
        readonly_paths=tuple(_absolute(p, "read-only path") for p in security.readonly_paths),
        image_groups=True,
        own_pid_namespace=own_pid,
    )
    return dataclasses.replace(
        request,
        user=user if user is not None else request.user,
        group=group if group is not None else request.group,
        supplementary_gids=(*(request.supplementary_gids or ()), *map(int, security.supplemental_groups))
        or request.supplementary_gids,
        read_only_rootfs=security.readonly_rootfs or request.read_only_rootfs,
        confinement=confinement,
        overrides=(*request.overrides, *resources(config.linux.resources)),
    )


def _identity(security: Any) -> tuple[str | None, str | None]:
    """(user, group) as the planner takes them: a number, or a name it finds in the image."""
    user: str | None = None
    if security.HasField("run_as_user"):
        if security.run_as_username:
            raise invalid("run_as_user and run_as_username are both set: give one")
        user = str(_id(security.run_as_user.value, "run_as_user"))
    elif security.run_as_username:
        user = security.run_as_username
        if ":" in user or "\n" in user:
            raise invalid(f"run_as_username {user!r} is not a user name")
    group = None
    if security.HasField("run_as_group"):
        if user is None:
            raise invalid("run_as_group is set without run_as_user or run_as_username")
        group = str(_id(security.run_as_group.value, "run_as_group"))
    return user, group


def _id(value: int, what: str) -> int:
    if not 0 <= value < 2**32 - 1:
        raise invalid(f"{what} {value} is not a user or group ID")
    return value


def capability_name(name: str) -> str:
    """``NET_ADMIN``, ``net_admin``, ``CAP_NET_ADMIN`` → ``CAP_NET_ADMIN``; ``ALL`` stays."""
    upper = name.strip().upper()
    if upper == ALL:
        return ALL
    bare = upper.removeprefix("CAP_")
    if not bare or not bare.replace("_", "").isalnum():
        raise invalid(f"{name!r} is not a capability")
    return "CAP_" + bare


def _capabilities(capability: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    added = tuple(dict.fromkeys(capability_name(c) for c in capability.add_capabilities))
    dropped = tuple(dict.fromkeys(capability_name(c) for c in capability.drop_capabilities))
    if capability.add_ambient_capabilities:
        raise _unsupported("ambient capabilities")
    return added, dropped


def _read_file(path: str) -> str:
    try:
        with open(path) as file:
            return file.read()
    except OSError as error:
        raise invalid(f"cannot read seccomp profile {path}: {error.strerror}") from None


def _seccomp(
    security: Any, added: tuple[str, ...], dropped: tuple[str, ...], read: Callable[[str], str]
) -> dict[str, Any]:
    """Confinement's seccomp fields for the container's profile: the SecurityProfile where it is
    set, else the deprecated seccomp_profile_path (what critest 1.26 and older kubelets send)."""
    if security.HasField("seccomp"):
        profile = security.seccomp
        kind = profile.profile_type
        if kind == api_pb2.SecurityProfile.ProfileType.Unconfined:
            return {"seccomp_mode": "unconfined"}
        if kind == api_pb2.SecurityProfile.ProfileType.RuntimeDefault:
            return {}
        path = profile.localhost_ref
    else:
        text = security.seccomp_profile_path
        if text in UNCONFINED:
            return {"seccomp_mode": "unconfined"}
        if text in RUNTIME_DEFAULT:
            return {}
        if not text.startswith(LOCALHOST):
            raise invalid(
                f"seccomp profile {text!r} is not runtime/default, docker/default, unconfined or "
                "localhost/<absolute path>"
            )
        path = text.removeprefix(LOCALHOST)
    if not path.startswith("/"):
        raise invalid(f"seccomp profile {path!r}: a Localhost profile is an absolute path on the node")
    mode, calls, errno = profile_filter(read(path), path, _effective(added, dropped))
    return {"seccomp_mode": mode, "seccomp_set": calls, "seccomp_errno": errno}


DEFAULT_SET = frozenset(
    {
        "CAP_AUDIT_WRITE",
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_KILL",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_SETPCAP",
        "CAP_SETFCAP",
        "CAP_SYS_CHROOT",
    }
)  # fmt: skip  (stage1/app_unit.py DEFAULT_CAPABILITIES: a test holds them equal)


def _effective(added: tuple[str, ...], dropped: tuple[str, ...]) -> frozenset[str] | None:
    """The container's capabilities, for a profile's rules that hold only with some (None: all)."""
    if ALL in dropped:
        return frozenset(c for c in added if c != ALL) if ALL not in added else frozenset()
    if ALL in added:
        return None
    return (DEFAULT_SET | set(added)) - set(dropped)


# what a unit setting's value would read as more than one path, a specifier, or a quote
_UNSAFE = frozenset(" \t\n\r\"'\\:%;")


def _absolute(path: str, what: str) -> str:
    """A path that reaches unit settings as it is: absolute, normal (no '..', '.', '//'), and none
    of what systemd would split, expand or unquote in it."""
    if not path.startswith("/") or posixpath.normpath(path) != path or "//" in path or _UNSAFE & set(path):
        raise invalid(f"{what} {path!r} is not a normal absolute path (no '..', spaces, quotes, ':' or '%')")
    return path


CPU_PERIOD_DEFAULT = 100_000  # µs: the kernel's CFS period, what a quota without a period is of


def resources(linux: Any) -> tuple[Isolator, ...]:
    """The container's resources at create as nspod's isolators (zero: not set)."""
    isolators = []
    if linux.memory_limit_in_bytes > 0:
        isolators.append(parse_isolator_flag("--memory", str(linux.memory_limit_in_bytes)))
    if linux.cpu_quota > 0:
        period = linux.cpu_period if linux.cpu_period > 0 else CPU_PERIOD_DEFAULT
        millicores = max(1, linux.cpu_quota * 1000 // period)
        isolators.append(parse_isolator_flag("--cpu", f"{millicores}m"))
    if linux.cpu_shares > 0:
        isolators.append(parse_isolator_flag("--cpu-shares", str(linux.cpu_shares)))
    if linux.oom_score_adj != 0:
        isolators.append(parse_isolator_flag("--oom-score-adj", str(linux.oom_score_adj)))
    return tuple(isolators)
