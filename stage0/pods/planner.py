"""Planning a pod, purely: requests and images (each a manifest and an :class:`ImageTree`) in; the
stage1 pod spec and the appc PodManifest out. No fetching, no rendering, no disk but through the
trees, so every rule is unit-tested without root or systemd (tests/unit/test_planner.py).

Everything stage1 needs is resolved here, against each app's own image: the executable (searched
in the app's PATH, symlinks followed inside the image), user and group (the image's /etc/passwd and
/etc/group, a number, or the owner of a path), and the environment, layered as rkt does: host
(``--inherit-env``) < image < ``--set-env-file`` < ``--set-env`` < ``--environment``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from stage0 import APPC_SPEC_VERSION
from stage0.errors import Error, ErrorKind, UsageError
from stage0.images.oci.convert import STOP_SIGNAL
from stage0.images.oci.plan import oci_argv, oci_volumes, stop_signal
from stage0.images.tree import ImageTree, PlannedImage
from stage0.pods.confinement import IPC_SYSCTL, confined, pod_sysctl
from stage0.pods.dns import hosts_file, resolv_conf
from stage0.pods.health import declared_health
from stage0.pods.network import port_specs
from stage0.pods.requests import AppRequest, PodRequest
from stage0.schema.app import App, NameValue
from stage0.schema.image import ImageManifest
from stage0.schema.isolators import Isolator
from stage0.schema.pod import ExposedPort, Mount, PodManifest, RuntimeApp, RuntimeImage, Volume
from stage0.schema.quantity import Quantity
from stage0.schema.types import AbsolutePath, ACIdentifier, ACName, ImageID, Invalid, SemVer
from stage1.abi import (
    DEFAULT_PATH,
    DEFAULT_STOP_TIMEOUT,
    AppSpec,
    NetworkSpec,
    PodSpec,
    VolumeSpec,
)

NOTIFY = "appc.io/executor/supports-systemd-notify"
MACHINE_ANNOTATION = "nspod.io/machine"
RELAXED_ANNOTATION = "nspod.io/insecure-options"  # the parts of the default profile lifted
OURS = (MACHINE_ANNOTATION, RELAXED_ANNOTATION)  # written by nspod, whatever a pod manifest said


class PrepareError(Error):
    kind = ErrorKind.INVALID_ARGUMENT
    hint = "check the image with 'nspod image cat-manifest IMAGE'"


def find_executable(tree: ImageTree, command: str, path_var: str) -> str:
    """The absolute in-image path of ``command`` (execvp's rules, inside the image)."""
    if "/" in command:
        candidates = [command if command.startswith("/") else "/" + command]
    else:
        candidates = [f"{d.rstrip('/')}/{command}" for d in path_var.split(":") if d.startswith("/")]
    for candidate in candidates:
        if tree.is_executable(candidate):
            return candidate
    raise PrepareError(
        f"{command!r} is not an executable file in the image",
        hint="give its absolute path with --exec, or check the image's PATH",
    )


def resolve_id(tree: ImageTree, value: str, table: str) -> int:
    """appc's order: a name in the image's /etc/passwd|group, a number, or the owner of a path."""
    found = tree.account(table, value)
    if found is not None:
        return found
    if value.isdigit():
        return int(value)
    if value.startswith("/"):
        owner = tree.owner(value)
        if owner is not None:
            return owner[0] if table == "passwd" else owner[1]
    what = "user" if table == "passwd" else "group"
    raise PrepareError(
        f"{what} {value!r} is not in the image's /etc/{table}, not a number and not a path in it"
    )


def default_app_name(image_name: str) -> str:
    """``example.com/my_app`` → ``my-app``: the last path component as an AC name."""
    base = re.sub(r"[^a-z0-9]+", "-", image_name.rsplit("/", 1)[-1].lower()).strip("-")
    return base or "app"


def image_app(request: AppRequest, manifest: ImageManifest) -> App | None:
    """The app to run: the pod manifest's, which replaces the image's whole, else the image's."""
    return request.app if request.app is not None else manifest.app


def environment(request: AppRequest, manifest: ImageManifest, pod: PodRequest) -> dict[str, str]:
    """rkt's layers, low to high: host, image, env file, --set-env, the app's --environment."""
    app = image_app(request, manifest)
    env: dict[str, str] = dict(pod.inherit_env)
    env.update({str(e.name): e.value for e in app.environment} if app else {})
    env.update(dict(pod.env_file))
    env.update(dict(pod.set_env))
    env.update(dict(request.environment))
    env.pop("AC_APP_NAME", None)  # stage1 sets it
    return env


def app_spec(request: AppRequest, image: PlannedImage, pod: PodRequest, name: str) -> AppSpec:
    manifest, tree = image.manifest, image.tree
    app = image_app(request, manifest)
    if app is None and request.exec is None:
        raise PrepareError(f"image {manifest.name} has no app to run", hint="say what to run with --exec")
    image_exec = list(app.exec) if app else []
    argv = [request.exec or (image_exec[0] if image_exec else "")]
    if not argv[0]:
        raise PrepareError(f"image {manifest.name} has no exec", hint="say what to run with --exec")
    argv += list(request.args) if request.args is not None else ([] if request.exec else image_exec[1:])
    argv = oci_argv(manifest, request.exec, request.args) or argv
    env = environment(request, manifest, pod)
    argv[0] = find_executable(tree, argv[0], env.get("PATH", DEFAULT_PATH))
    explicit = (*pod.mounts, *request.mounts)
    mounted = {path for _, path, _ in explicit}
    # appc: a pod volume named like one of the app's mount points is mounted there
    implicit = tuple(
        (str(m.name), str(m.path), m.read_only)
        for m in (app.mount_points if app else ())
        if str(m.name) in {v.name for v in pod.volumes} and str(m.path) not in mounted
    )
    handlers = app.event_handlers if app else ()
    planned = AppSpec(
        name=name,
        rootfs=tree.rootfs,
        lower=tree.lower,
        exec=tuple(argv),
        env=tuple(sorted(env.items())),
        user=resolve_id(tree, request.user or (app.user if app else "0"), "passwd"),
        group=resolve_id(tree, request.group or (app.group if app else "0"), "group"),
        supplementary_gids=request.supplementary_gids
        if request.supplementary_gids is not None
        else (app.supplementary_gids if app else ()),
        working_directory=request.working_dir
        or (app.working_directory if app and app.working_directory else "/"),
        pre_start=tuple(h.exec for h in handlers if h.name == "pre-start"),
        post_stop=tuple(h.exec for h in handlers if h.name == "post-stop"),
        notify=manifest.annotation(NOTIFY) == "true",
        sockets=tuple(str(p.name) for p in app.ports if p.socket_activated) if app else (),
        mounts=explicit + implicit,
        relaxed=pod.relaxed,
        read_only_rootfs=bool(request.read_only_rootfs),
        stop_timeout=DEFAULT_STOP_TIMEOUT if request.stop_timeout is None else request.stop_timeout,
        stop_signal=stop_signal(manifest.annotation(STOP_SIGNAL)),
        log_path=request.log_path,
        cri_stdio=request.cri_stdio,
        stdin=request.stdin,
        stdin_once=request.stdin_once,
        tty=request.tty,
        health=declared_health(request, manifest),
        **isolator_limits(isolators(request, image)),
    )
    return confined(planned, request, tree)


def isolators(request: AppRequest, image: PlannedImage) -> tuple[Isolator, ...]:
    """The app's appc isolators in effect: the image's, or the pod file's, under the command line's."""
    app = image_app(request, image.manifest)
    base = request.isolators if request.isolators is not None else (app.isolators if app else ())
    return overridden(base, request.overrides)


# pairs of which the command line's one replaces both of the image's
PAIRS = (
    {"os/linux/capabilities-retain-set", "os/linux/capabilities-remove-set"},
    {"os/linux/seccomp-retain-set", "os/linux/seccomp-remove-set"},
)


def overridden(isolators: tuple[Isolator, ...], overrides: tuple[Isolator, ...]) -> tuple[Isolator, ...]:
    """The image's isolators with the command line's over them, kind by kind (a capability or
    seccomp set given on the command line replaces both of the image's)."""
    names = {str(o.name) for o in overrides}
    for pair in PAIRS:
        if names & pair:
            names |= pair
    return (*(i for i in isolators if str(i.name) not in names), *overrides)


def sysctl(value: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    for key in value:
        if not IPC_SYSCTL.fullmatch(key):
            raise PrepareError(
                f"sysctl {key} is not the pod's own: setting it would change the host",
                hint="a pod has its own kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* settings",
            )
    return tuple(sorted(value.items()))


def refused(name: str) -> PrepareError:
    why = (
        "nspod shapes no traffic" if "network" in name else "systemd limits I/O per device, appc names none"
    )
    return PrepareError(
        f"isolator {name} is not supported: {why}",
        hint="remove it from the image or the pod file (nspod does not ignore a limit silently)",
    )


def isolator_limits(isolators: tuple[Isolator, ...]) -> dict[str, Any]:
    """appc isolators (already validated) as AppSpec fields; the last of a kind wins."""
    limits: dict[str, Any] = {}
    for isolator in isolators:
        value = isolator.value
        match str(isolator.name):
            case "resource/memory" if value.get("limit") is not None:
                limits["memory_max"] = int(Quantity(value["limit"]).value)
            case "resource/cpu" if value.get("limit") is not None:
                limits["cpu_quota"] = max(1, int(Quantity(value["limit"]).value * 100))
            case "os/linux/capabilities-retain-set":
                limits["capabilities"] = tuple(value["set"])
            case "os/linux/capabilities-remove-set":
                limits["capabilities_removed"] = tuple(value["set"])
            case "os/linux/no-new-privileges":
                limits["no_new_privileges"] = bool(value)
            case "os/linux/cpu-shares":
                limits["cpu_shares"] = int(value)
            case "os/linux/oom-score-adj":
                limits["oom_score_adj"] = int(value)
            case "os/linux/seccomp-retain-set" | "os/linux/seccomp-remove-set":
                limits["seccomp_mode"] = "retain" if str(isolator.name).endswith("retain-set") else "remove"
                limits["seccomp_set"] = tuple(value["set"])
                limits["seccomp_errno"] = value.get("errno", "")
            case "os/linux/selinux-context":
                limits["selinux_context"] = ":".join(value[k] for k in ("user", "role", "type", "level"))
            case "os/unix/sysctl":
                limits["sysctl"] = sysctl(value)
            case "resource/block-bandwidth" | "resource/block-iops" | "resource/network-bandwidth":
                raise refused(str(isolator.name))
    return limits


def check_volumes(volumes: tuple[VolumeSpec, ...], apps: list[AppSpec]) -> None:
    """Names unique, every mount naming a volume, mount targets absolute (host sources are the
    orchestration's to check: they are on the host's disk)."""
    names = [v.name for v in volumes]
    if len(set(names)) != len(names):
        raise UsageError("two volumes have the same name", hint="give each --volume its own name")
    for app in apps:
        for name, path, _ in app.mounts:
            if name not in names:
                raise UsageError(
                    f"app {app.name} mounts volume {name!r}, which is not defined",
                    hint="define it with --volume NAME,kind=…",
                )
            if not path.startswith("/") or ".." in path.split("/"):
                raise UsageError(f"app {app.name}: mount target {path!r} must be an absolute path")


def offered_ports(apps: list[AppSpec], images: list[PlannedImage]) -> dict[str, tuple[str, int]]:
    """The apps' ports by name (appc: unique in a pod): protocol and number."""
    return {
        str(port.name): (port.protocol, port.port)
        for image in images
        if (chosen := image.manifest.app)
        for port in chosen.ports
    }


def plan_pod(
    uuid: str,
    request: PodRequest,
    images: list[PlannedImage],
    networks: tuple[NetworkSpec, ...] | None = None,
) -> tuple[PodSpec, PodManifest]:
    """The pod spec stage1 runs and the appc PodManifest ``cat-manifest`` shows; ``images``: one
    per app request, in order; ``networks``: the nets it joins (stage0/pods/network.py), None: the host's."""
    if not request.apps and not request.sandbox:
        raise UsageError("no image given", hint="nspod run IMAGE [IMAGE…]")
    assert len(images) == len(request.apps)
    apps: list[AppSpec] = []
    for app_request, image in zip(request.apps, images, strict=True):
        name = app_request.name or default_app_name(str(image.manifest.name))
        try:
            ACName(name)
        except Invalid as error:
            raise UsageError(
                f"bad app name: {error}", hint="--name takes lowercase letters, digits and dashes"
            ) from None
        if name in (a.name for a in apps):
            raise UsageError(f"two apps are called {name!r}", hint="name them with --name after each image")
        apps.append(app_spec(app_request, image, request, name))
    apps, volumes = oci_volumes(apps, images, request.volumes)
    check_volumes(volumes, apps)
    if request.host_ipc and request.private_users:  # the pod's root could not join the host's
        raise UsageError(
            "the host's IPC namespace and a user namespace of the pod's own cannot go together",
            hint="drop one of them",
        )
    settings: dict[str, str] = {}
    for key, value in (s for app in apps for s in app.sysctl):  # one IPC namespace for the whole pod
        if settings.setdefault(key, value) != value:
            raise PrepareError(f"two apps set sysctl {key} differently", hint="a pod has one value for it")
    machine = request.name or f"nspod-{uuid}"
    hostname = request.hostname or machine
    (resolv, resolv_host), (hosts, hosts_host) = resolv_conf(request.dns), hosts_file(request.dns, hostname)
    spec = PodSpec(
        uuid=uuid,
        machine=machine,
        hostname=hostname,
        apps=tuple(apps),
        volumes=volumes,
        resolv_conf=resolv,
        resolv_conf_from_host=resolv_host,
        hosts=hosts,
        hosts_from_host=hosts_host,
        dns_default=not request.dns.servers,
        networks=networks,
        mds_register=request.mds_register,
        ports=port_specs(request.ports, offered_ports(apps, images), networks),
        sandbox=request.sandbox,
        capabilities=request.capabilities,
        app_filters=request.app_filters,
        sysctl=pod_sysctl(request.sysctl, own_network=networks is not None),
        host_pid=request.host_pid,
        host_ipc=request.host_ipc,
        slice=request.cgroup_parent,
    )
    effective = [isolators(r, i) for r, i in zip(request.apps, images, strict=True)]
    return spec, pod_manifest(spec, images, request, effective)


def _volume(volume: VolumeSpec) -> Volume:
    name = ACName(volume.name)
    if volume.kind == "host":
        return Volume(name=name, kind="host", read_only=volume.read_only, source=AbsolutePath(volume.source))
    mode = f"{volume.mode:04o}"
    return Volume(
        name=name, kind="empty", read_only=volume.read_only, mode=mode, uid=volume.uid, gid=volume.gid
    )


def pod_manifest(
    spec: PodSpec, images: list[PlannedImage], request: PodRequest, effective: list[tuple[Isolator, ...]]
) -> PodManifest:
    """The appc PodManifest of a planned pod, typed (stage0/schema/pod.py): each app with the
    isolators in effect (``effective``) and its annotations, the pod's annotations with the
    machine's name and the parts of the profile lifted."""
    runtime_apps = tuple(
        RuntimeApp(
            name=ACName(app.name),
            image=RuntimeImage(
                id=ImageID(image.id),
                name=ACIdentifier(image.name),
                labels=tuple(NameValue(ACIdentifier(k), v) for k, v in sorted(image.labels.items())),
            ),
            app=dataclasses.replace(chosen, isolators=kept)
            if (chosen := image_app(asked, image.manifest))
            else None,
            mounts=tuple(Mount(volume=ACName(v), path=AbsolutePath(p)) for v, p, _ in app.mounts),
            read_only_rootfs=app.read_only_rootfs,
            annotations=tuple(NameValue(ACIdentifier(k), v) for k, v in asked.annotations),
        )
        for app, image, kept, asked in zip(spec.apps, images, effective, request.apps, strict=True)
    )
    volumes = tuple(
        Volume(name=ACName(v.name), kind=v.kind, read_only=v.read_only, source=AbsolutePath(v.source))
        if v.kind == "host"
        else Volume(
            name=ACName(v.name),
            kind=v.kind,
            read_only=v.read_only,
            mode=f"{v.mode:04o}",
            uid=v.uid,
            gid=v.gid,
        )
        for v in spec.volumes
    )
    return PodManifest(
        ac_version=SemVer(APPC_SPEC_VERSION),
        apps=runtime_apps,
        volumes=volumes,
        ports=tuple(
            ExposedPort(name=ACName(p.name), host_port=p.host_port, host_ip=p.host_ip or None)
            for p in spec.ports
        ),
        annotations=(
            *(NameValue(ACIdentifier(k), v) for k, v in request.annotations if k not in OURS),
            NameValue(ACIdentifier(MACHINE_ANNOTATION), spec.machine),
            *(
                (NameValue(ACIdentifier(RELAXED_ANNOTATION), ",".join(relaxed)),)
                if (relaxed := request.relaxed)
                else ()
            ),
        ),
    )
