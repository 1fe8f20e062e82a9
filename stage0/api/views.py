"""The typed read model: a pod, an app sandbox's app and a stored image as every front end shows
them. The CLI's ``--format=json`` and text, and the CRI's status replies, render these; nothing
else reads a pod's files for display. Each view is a snapshot read at one moment (a pod may move
on meanwhile: readers of a vanished pod get FileNotFoundError, as :meth:`Pod.created` raises)."""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: `nspod fetch` needs ImageView alone (its start-up time)
    from stage0.images.store.rows import ImageRow
    from stage0.pods.dirs import Pod, PodState
    from stage0.pods.health import HealthView


@dataclass(frozen=True, slots=True)
class AppImage:
    """An app's image as the pod manifest names it."""

    name: str
    version: str | None
    id: str | None


@dataclass(frozen=True, slots=True)
class PodApp:
    """One app of a pod, from its manifest, with the exit code and signal its reaper recorded."""

    name: str
    image: AppImage
    exit_code: int | None
    signal: str | None  # "SIGTERM" when a signal ended it (exit code 128 + N)
    health: HealthView | None = None  # what its health check last found (stage0/pods/health.py)


@dataclass(frozen=True, slots=True)
class NetView:
    """A network the pod joined, as stage1 recorded its CNI result (``net.json``, stage1/ABI.md)."""

    name: str
    interface: str
    addresses: tuple[str, ...]  # without prefix length
    gateways: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PodView:
    uuid: str
    path: str  # the pod's directory (where its state lives; moves with its state)
    state: PodState
    machine: str | None  # the machine name, from the pod spec
    unit: str | None  # the host unit it runs (or ran) as
    created: float
    started: float | None
    apps: tuple[PodApp, ...]
    networks: tuple[NetView, ...]
    pid: int | None = None  # the host unit's main PID, only read by pod_status for a running pod

    @property
    def exited(self) -> bool:
        from stage0.pods.dirs import PodState

        return self.state in (PodState.EXITED, PodState.EXITED_GARBAGE)

    def addresses(self) -> tuple[str, ...]:
        """Every address the pod has, in network order (the CRI's pod IP is the first)."""
        return tuple(address for net in self.networks for address in net.addresses)


class AppState(enum.StrEnum):
    """An app sandbox's app, as its unit in the pod's systemd and its reaper say."""

    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    EXITED = "exited"


@dataclass(frozen=True, slots=True)
class AppView:
    name: str
    state: AppState
    exit_code: int | None
    signal: str | None
    started: float | None
    exited: float | None
    pid: int | None
    reason: str | None = None  # "oom-kill": the kernel's OOM killer ended it (systemd's Result)

    @classmethod
    def of(cls, state: Mapping[str, Any]) -> AppView:
        """From stage1's JSON line (``app status``, stage1/ABI.md)."""
        return cls(
            name=str(state["name"]),
            state=AppState(state["state"]),
            exit_code=state.get("exit_code"),
            signal=state.get("signal"),
            started=_seconds(state.get("started")),  # stage1 gives the recorded text
            exited=_seconds(state.get("exited")),
            pid=state.get("pid"),
            reason=state.get("reason"),
        )


def _seconds(value: object) -> float | None:
    try:
        return float(value) if isinstance(value, str | int | float) else None
    except ValueError:
        return None


def recorded_app(pod: Pod, name: str) -> AppView:
    """An app of a pod that ended, from what its reaper recorded: exited with its code once it
    started (255 when it was killed with its pod, unrecorded), else still created."""
    status = os.path.join(pod.paths.status, name)
    code = pod.app_status().get(name)
    try:
        with open(status + ".started") as file:
            started = _seconds(file.read().strip())
    except OSError:
        started = None
    if started is None and code is None:
        return AppView(name, AppState.CREATED, None, None, None, None, None)
    exited = os.path.getmtime(status) if code is not None else None
    signal = pod.app_signals().get(name)
    try:
        with open(status + ".reason") as file:
            reason = file.read().strip() or None
    except OSError:
        reason = None
    return AppView(
        name, AppState.EXITED, 255 if code is None else code, signal, started, exited, None, reason
    )


@dataclass(frozen=True, slots=True)
class ImageView:
    id: str
    short_id: str
    name: str
    reference: str  # NAME:VERSION, or the registry repository and tag an OCI image came from
    digest: str  # an OCI image's manifest digest, "" for an ACI
    version: str | None
    labels: Mapping[str, str]
    size: int  # blob and rendered tree
    shared_size: int  # of layers other images use too
    own_size: int
    import_time: float
    last_used: float
    latest: bool
    signer: str | None
    source: str
    is_oci: bool
    manifest: bytes = field(repr=False)  # the appc image manifest as stored

    @classmethod
    def of(cls, row: ImageRow, sharing: Mapping[str, tuple[int, int]] | None = None) -> ImageView:
        """``sharing``: Index.layer_sharing() (shared and own bytes by image ID)."""
        from stage0.images.catalog import display_name
        from stage0.images.oci.convert import oci_digest

        shared, own = (sharing or {}).get(row.id, (0, row.size + row.tree_size))
        return cls(
            id=row.id,
            short_id=row.short_id,
            name=row.name,
            reference=display_name(row),
            digest=oci_digest(row),
            version=row.labels.get("version"),
            labels=dict(row.labels),
            size=row.size + row.tree_size,
            shared_size=shared,
            own_size=own,
            import_time=row.import_time,
            last_used=row.last_used,
            latest=row.latest,
            signer=row.signer,
            source=row.source,
            is_oci=row.is_oci,
            manifest=row.manifest,
        )


def pod_view(pod: Pod, *, pid: int | None = None) -> PodView:
    """The pod as it is now; raises FileNotFoundError when it vanished meanwhile."""
    return PodView(
        uuid=pod.uuid,
        path=pod.path,
        state=pod.state(),
        machine=pod.machine(),
        unit=pod.unit(),
        created=pod.created(),
        started=pod.started(),
        apps=pod_apps(pod),
        networks=pod_networks(pod),
        pid=pid,
    )


def pod_apps(pod: Pod) -> tuple[PodApp, ...]:
    """The pod's apps from its manifest, with their images and exit codes (a broken manifest: none)."""
    from stage0.pods.health import read_health

    try:
        with open(pod.paths.manifest) as file:
            manifest = json.load(file)
        apps = manifest.get("apps", [])
        codes, signals = pod.app_status(), pod.app_signals()
        return tuple(
            PodApp(
                name=app["name"],
                image=AppImage(
                    name=app["image"]["name"],
                    version=next(
                        (x["value"] for x in app["image"].get("labels", []) if x.get("name") == "version"),
                        None,
                    ),
                    id=app["image"].get("id"),
                ),
                exit_code=codes.get(app["name"]),
                signal=signals.get(app["name"]),
                health=read_health(pod.paths.status, app["name"]),
            )
            for app in apps
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ()  # a pod whose manifest is broken (or gone) is still listed


def pod_networks(pod: Pod) -> tuple[NetView, ...]:
    """The nets the pod joined as stage1 recorded them (``net.json``: name, ifname, CNI result)."""
    try:
        with open(pod.paths.net) as file:
            recorded = json.load(file)
        return tuple(
            NetView(
                name=net["name"],
                interface=net["interface"],
                addresses=tuple(ip["address"].split("/")[0] for ip in net["result"].get("ips", [])),
                gateways=tuple(ip["gateway"] for ip in net["result"].get("ips", []) if ip.get("gateway")),
            )
            for net in recorded
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ()
