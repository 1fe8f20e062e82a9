"""The host side of a pod, as data: the systemd-nspawn command line and the transient service."""

from __future__ import annotations

from stage1.abi import APP_ROOT, USERNS_SIZE, AppSpec, Error, PodPaths, PodSpec, unit_name
from stage1.app_unit import ALL, DEFAULT_CAPABILITIES, POD_ETC, STATUS_DIR, USERNS_LAYERS
from stage1.cni import down_path, netns_path
from stage1.escape import nspawn_bind as bind
from stage1.health import HOST_JOURNAL, wants_host_journal
from stage1.lifecycle import stop_post
from stage1.namespaces import host_ipc_argv
from stage1.stdio import Stdio, nspawn_stdio
from stage1.transient import CollectMode, ExecCommand, KillMode, Property, ServiceType, TransientService
from stage1.units import GENERATORS, HOST_NOTIFY
from stage1.volumes import staged

NSPAWN = "/usr/bin/systemd-nspawn"
FLOCK = "/usr/bin/flock"
NSENTER = "/usr/bin/nsenter"
HOST_MANAGER_NOTIFY = "/run/systemd/notify"
JOURNAL_SOCKET = "/run/systemd/journal/socket"
# The devices a pod may open, the list nspawn gives the scope it makes itself (with --keep-unit it
# sets none, and this unit is the pod's): the standard pseudo-devices and ptys, and none may be
# created but those; mknod of any other node, a disk's above all, is refused.
# (units/pod@.service carries the same list; a test compares them.)
POD_DEVICES = (
    ("/dev/null", "rwm"),
    ("/dev/zero", "rwm"),
    ("/dev/full", "rwm"),
    ("/dev/random", "rwm"),
    ("/dev/urandom", "rwm"),
    ("/dev/tty", "rwm"),
    ("/dev/net/tun", "rwm"),
    ("/dev/pts/ptmx", "rw"),
    ("char-pts", "rw"),
)


def nspawn_argv(
    spec: PodSpec, paths: PodPaths, *, debug: bool = False, stdio: Stdio = Stdio.JOURNAL
) -> list[str]:
    argv = [
        NSPAWN,
        "--quiet",
        "--boot",
        "--notify-ready=yes",
        "--keep-unit",
        "--register=yes",
        f"--machine={spec.machine}",
        f"--uuid={spec.uuid}",
        f"--hostname={spec.hostname}",
        "--settings=no",  # stray .nspawn files must not change our pods
        "--link-journal=no",
        f"--setenv=SYSTEMD_GENERATOR_PATH={GENERATORS}",
        f"--directory={paths.stage1}",
        bind("--bind-ro", "/usr", "/usr"),
        bind("--bind", paths.status, STATUS_DIR),
        # the host manager's notify socket: the pod reports its apps' readiness as the unit's STATUS=
        bind("--bind", HOST_MANAGER_NOTIFY, HOST_NOTIFY),
        # the host journal's socket for the health checks' events (stage1/health.py), only then
        *([bind("--bind", JOURNAL_SOCKET, HOST_JOURNAL)] if wants_host_journal(spec) else []),
    ]
    argv += capability_argv(spec)
    argv += host_ipc_argv(spec.host_ipc)
    for name, from_host in (("resolv.conf", spec.resolv_conf_from_host), ("hosts", spec.hosts_from_host)):
        if from_host:  # the host's own, as it is when the pod starts, read-only
            argv.append(bind("--bind-ro", f"/etc/{name}", f"{POD_ETC}/{name}"))
    if spec.sandbox and stdio is Stdio.JOURNAL:  # an app may join attached later (a pooled run)
        stdio = Stdio.ATTACHED
    if spec.private_users is None:
        argv += [*apps_argv(spec, paths), *nspawn_stdio(stdio, paths.io)]
    else:
        # the pod's root is host UID private_users; the stage1 tree and every bind are ID-mapped
        # mounts, so files keep their owners inside and nothing is chowned (prepare stays O(1))
        argv = [idmapped(a) for a in [*argv, *userns_apps(spec, paths), *nspawn_stdio(stdio, paths.io)]]
        argv += userns_layers(spec, paths)
        argv += [a for app in spec.apps for a in volume_binds(spec, paths, app)]
        argv += [f"--private-users={spec.private_users}:{USERNS_SIZE}", "--private-users-ownership=map"]
    # for systemd inside: the console carries the apps' output; systemd itself speaks up only about errors
    if debug:
        argv += ["--", "--show-status=no", "--log-target=console", "--log-level=info"]
    else:
        argv += ["--", "--show-status=no", "--log-target=journal", "--log-level=crit"]
    return argv


# nspawn's own system call filter over the whole pod off (systemd's switch for every seccomp use
# of the process it is given to, nspawn alone here: the pod's systemd gets nspawn's --setenv only),
# so each app's unit loads exactly the filter its request asks for
NO_POD_FILTER = (("SYSTEMD_SECCOMP", "0"),)
USEC_PER_PERCENT = 10_000  # CPUQuota=1% is 10 ms of CPU time a second


def limit_properties(memory: int | None, cpu: int | None) -> tuple[Property, ...]:
    """Unit properties for a memory limit (bytes) and a CPU quota (percent of one CPU)."""
    props = []
    if memory is not None:
        props.append(Property("MemoryMax", "t", memory))
    if cpu is not None:
        props.append(Property("CPUQuotaPerSecUSec", "t", cpu * USEC_PER_PERCENT))
    return tuple(props)


# where ``set-property --runtime`` keeps a unit's limits: they outlive the unit's restarts (until
# boot), so a pod@ whose pod file dropped a limit must remove it; systemd names each file for the
# property's unit-file key
RUNTIME_CONTROL = "/run/systemd/system.control"
LIMIT_KEYS = {"MemoryMax": "MemoryMax", "CPUQuotaPerSecUSec": "CPUQuota"}


def stale_limit_drop_ins(unit: str, limits: tuple[Property, ...]) -> tuple[str, ...]:
    """The runtime drop-ins of the limits ``limit_properties`` may set that ``limits`` no longer does."""
    kept = {prop.name for prop in limits}
    return tuple(
        f"{RUNTIME_CONTROL}/{unit}.d/50-{key}.conf" for name, key in LIMIT_KEYS.items() if name not in kept
    )


def pod_limits(memory: list[int | None], cpu: list[int | None]) -> tuple[Property, ...]:
    """The pod's own unit bounded by the sum of its apps' limits, where every app has one. On a
    cgroup v1 host this is the only bound that holds (the pod's systemd gets no v1 controllers to
    limit an app with); on v2 it backs the apps' own. (systemd applies MemoryMax= as v1's
    memory.limit_in_bytes, CPUQuota= as cpu.cfs_quota_us.)"""
    total = [  # no apps (an app sandbox's start): no bound yet
        sum(v for v in values if v is not None) if values and None not in values else None
        for values in (memory, cpu)
    ]
    return limit_properties(*total)


# nspawn's default bounding set for a container (systemd-nspawn(1), --capability=)
NSPAWN_CAPABILITIES = frozenset({
    "CAP_AUDIT_CONTROL", "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER", "CAP_FSETID", "CAP_IPC_OWNER", "CAP_KILL", "CAP_LEASE", "CAP_LINUX_IMMUTABLE",
    "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_RAW", "CAP_SETFCAP",
    "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_CHROOT",
    "CAP_SYS_NICE", "CAP_SYS_PTRACE", "CAP_SYS_RESOURCE", "CAP_SYS_TTY_CONFIG",
})  # fmt: skip
# what the pod's own systemd and journald need of them: mounts and namespaces for the apps' units
# (SYS_ADMIN), dropping to the apps' users and sets, rlimits and OOM scores, the exit of its PID 1
# (SYS_BOOT), the metadata of other users' processes in the journal (SYS_PTRACE)
POD_CAPABILITIES = frozenset({
    "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID", "CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP",
    "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_RESOURCE",
})  # fmt: skip


def capability_argv(spec: PodSpec) -> list[str]:
    """The pod's bounding set: what its systemd needs and what its apps keep, so an app retaining
    CAP_NET_ADMIN gets it and nothing else nspawn would give stays (rkt gave nspawn the apps' set).
    An app whose capabilities are not narrowed (--insecure-options=capabilities) keeps nspawn's;
    a pod keeping every capability (an app sandbox of the CRI, whose apps come later, each
    narrowed by its unit; a privileged app) keeps all of them."""
    if ALL in spec.capabilities or any(a.privileged or ALL in a.capabilities_added for a in spec.apps):
        return ["--capability=all"]
    kept: set[str] = set(spec.capabilities)
    for app in spec.apps:
        if "capabilities" in app.relaxed and app.capabilities is None and not app.capabilities_removed:
            return []
        retained = app.capabilities if app.capabilities is not None else DEFAULT_CAPABILITIES
        kept |= set((*retained, *app.capabilities_added)) - set(app.capabilities_removed)
    added = sorted(kept - NSPAWN_CAPABILITIES)
    dropped = sorted(NSPAWN_CAPABILITIES - POD_CAPABILITIES - kept)
    return [
        *([f"--capability={','.join(added)}"] if added else []),
        f"--drop-capability={','.join(dropped)}",
    ]


def volume_binds(spec: PodSpec, paths: PodPaths, app: AppSpec) -> list[str]:
    """Each of the app's volumes bound into the pod's own tree, where no app reaches, never into
    the app's root (stage1/volumes.py takes them on from there). With --private-users a volume is
    ID-mapped only when its owner asked (``idmap``): else host root's files are nobody's inside,
    and what the pod's root makes belongs to its own host range, never to host root."""
    argv = []
    for index, (name, _, read_only) in enumerate(app.mounts):
        volume = next(v for v in spec.volumes if v.name == name)
        source = volume.source if volume.kind == "host" else paths.volume(name)
        option = bind(
            "--bind-ro" if read_only or volume.read_only else "--bind", source, staged(app.name, index)
        )
        mapped = spec.private_users is not None and volume.idmap
        argv.append(option + ":idmap" if mapped else option)
    return argv


MOUNT_DATA = 4096  # the kernel takes a mount's options in one page
OVERLAY_STACK = 500  # overlayfs's most lower layers


def check_stack(app: AppSpec, upper: str) -> None:
    """Refuse an image with more layers than one overlay mount can stack (its options, which name
    every layer, must fit in a page; overlayfs stacks at most 500), before the pod starts."""
    layers = (*reversed(app.lower), app.rootfs)
    work = upper.rsplit("/", 1)[0] + "/work"
    size = len(f"lowerdir={':'.join(layers)},upperdir={upper},workdir={work}")
    if size >= MOUNT_DATA or len(layers) > OVERLAY_STACK:
        raise Error(
            f"app {app.name}: an image of {len(layers)} layers needs {size} bytes of overlay options,"
            f" over the kernel's {MOUNT_DATA} (and {OVERLAY_STACK} layers)",
            hint="use an image with fewer layers (squash it), or a shorter --dir",
        )


def apps_argv(spec: PodSpec, paths: PodPaths) -> list[str]:
    """Each app's root: nspawn's overlay of its image tree under a writable layer, and its
    volumes, staged for the pod to bind into that root (stage1/volumes.py)."""
    argv = []
    for app in spec.apps:
        root = APP_ROOT.format(app=app.name)  # writable; --readonly-rootfs is the app unit's
        # nspawn stacks left to right: the image's bottom layer first, the writable one last
        check_stack(app, paths.upper(app.name))
        argv.append(bind("--overlay", *reversed(app.lower), app.rootfs, paths.upper(app.name), root))
        argv += volume_binds(spec, paths, app)
    return argv


def idmapped(option: str) -> str:
    """A bind into a pod with its own user namespace, ID-mapped: host files keep their owners
    inside (root's stay root's) instead of all showing as nobody's. Not the host manager's notify
    socket or the journal's (anyone may write to them) nor the host's /etc files (anyone may read
    them): they may live on file systems that cannot be ID-mapped (tmpfs before Linux 6.3, overlayfs)."""
    plain = option.endswith((HOST_NOTIFY, HOST_JOURNAL)) or f":{POD_ETC}/" in option
    return option + ":idmap" if option.startswith("--bind") and not plain else option


def userns_apps(spec: PodSpec, paths: PodPaths) -> list[str]:
    """The apps' image layers for a pod with its own user namespace: nspawn's --overlay cannot be
    ID-mapped, so each image tree is bound ID-mapped read-only, and the pod's systemd mounts the
    overlay itself (stage1/units.py userns_mounts). The writable layer is not ID-mapped (it is
    the pod's own, chowned to its range by stage1/nspawn/run.py): what the pod's root writes there
    belongs to the pod's host user, never to host root."""
    argv = []
    for app in spec.apps:
        base = USERNS_LAYERS.format(app=app.name)
        argv.append(bind("--bind-ro", app.rootfs, f"{base}/lower"))
        for index, layer in enumerate(app.lower, 1):  # an OCI image's other layers, top first
            argv.append(bind("--bind-ro", layer, f"{base}/lower{index}"))
    return argv


def userns_layers(spec: PodSpec, paths: PodPaths) -> list[str]:
    """Each app's writable layer, bound as it is (never ID-mapped): see userns_apps."""
    return [
        bind("--bind", paths.layers(a.name), f"{USERNS_LAYERS.format(app=a.name)}/layers") for a in spec.apps
    ]


def spec_limits(spec: PodSpec) -> tuple[Property, ...]:
    """The pod's own bound as its spec sets it (``nspod update`` moves it with profile.json)."""
    return pod_limits([a.memory_max for a in spec.apps], [a.cpu_quota for a in spec.apps])


def pod_command(
    spec: PodSpec, paths: PodPaths, *, debug: bool = False, stdio: Stdio = Stdio.JOURNAL
) -> list[str]:
    """The pod's main process: flock hands nspawn the pod's lock; a pod with a network namespace
    of its own (stage1/network.py) starts nspawn inside it, as rkt did, rather than having nspawn
    join it (--network-namespace-path): with --private-users nspawn joins only after making the
    pod's user namespace, which owns no right over a namespace the host made."""
    argv = [FLOCK, "--no-fork", paths.lock, *nspawn_argv(spec, paths, debug=debug, stdio=stdio)]
    if spec.networks is not None:
        argv = [NSENTER, f"--net={netns_path(spec.uuid)}", *argv]
    return argv


def pod_service(
    spec: PodSpec,
    paths: PodPaths,
    *,
    debug: bool = False,
    stdio: Stdio = Stdio.JOURNAL,
    terminal: tuple[int, int, int] | None = None,
) -> TransientService:
    """The transient unit whose main process is nspawn; flock hands nspawn the pod's lock.
    ``terminal``: the caller's stdin, stdout and stderr, for ``Stdio.TTY``."""
    argv = pod_command(spec, paths, debug=debug, stdio=stdio)
    return TransientService(
        name=unit_name(spec.machine),
        description=f"nspod pod {spec.machine}",
        exec_start=(ExecCommand(argv[0], tuple(argv)),),
        type=ServiceType.NOTIFY,
        notify_access="all",  # nspawn says READY=1; the pod's ready units say STATUS= (see units.py)
        slice=spec.slice or "machine.slice",
        delegate=True,
        kill_mode=KillMode.MIXED,
        collect_mode=CollectMode.INACTIVE_OR_FAILED,
        log_extra_fields=(("POD_UUID", spec.uuid), ("POD_NAME", spec.machine)),
        stdio_fds=terminal,
        device_allow=POD_DEVICES,
        limits=spec_limits(spec),
        environment=NO_POD_FILTER if spec.app_filters else (),
        # the pod's network torn down however it ends (stage1/cni.py down_script); its end logged
        exec_stop_post=(
            *(
                (ExecCommand("/bin/sh", ("/bin/sh", down_path(spec.uuid)), ignore_failure=True),)
                if spec.networks is not None
                else ()
            ),
            stop_post(unit_name(spec.machine)),
        ),
    )
