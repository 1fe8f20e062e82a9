"""The CRI's own records on disk: what a sandbox or container was asked for, beyond the pod.

A sandbox's ID is its pod's UUID; a container's ID is made here, and its record names the pod and
the app it became, so every other part of the CRI finds a container's pod directory and app name
through :meth:`State.container` (or :func:`lookup_container` without a State). Records are one
JSON file each under ``DATA_DIR/cri/`` (``sandboxes/ID.json``, ``containers/ID.json``), each
replaced whole: a service killed at any point reads back what it had, and the true states come
from the pods themselves (runtime.py), never from these files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

CRI_DIR = "cri"


@dataclass(frozen=True, slots=True)
class SandboxRecord:
    id: str  # the pod's UUID
    name: str
    uid: str
    namespace: str
    attempt: int
    created_ns: int
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    runtime_handler: str = ""
    log_directory: str = ""
    hostname: str = ""
    host_network: bool = False
    host_pid: bool = False  # its containers are host units in the node's PID namespace (stage1/fly)
    pod_dir: str = ""  # where it was at creation; runtime.py finds it again by UUID
    config: str = ""  # the PodSandboxConfig as JSON (protobuf's), for later containers' rules
    stopped: bool = False  # StopPodSandbox answered: NOTREADY even if the pod was not found


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    id: str
    sandbox_id: str
    app: str  # the app's name in the pod
    name: str
    attempt: int
    created_ns: int
    image: str  # as asked (a reference or an ID)
    image_ref: str  # the image's ID in the store
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    log_path: str = ""  # absolute: the sandbox's log directory joined with the container's
    mounts: list[dict[str, Any]] = field(default_factory=list)  # CRI Mount messages, as JSON
    config: str = ""  # the ContainerConfig as JSON (protobuf's)


def new_container_id() -> str:
    """64 hex digits, as containerd's and CRI-O's IDs (crictl shows the first 13)."""
    return secrets.token_hex(32)


class State:
    """The records under ``root`` (``DATA_DIR/cri``), cached in memory, safe under threads."""

    def __init__(self, data_dir: str) -> None:
        self.root = os.path.join(data_dir, CRI_DIR)
        self._lock = threading.RLock()
        self._sandboxes: dict[str, SandboxRecord] = {}
        self._containers: dict[str, ContainerRecord] = {}

    def load(self) -> None:
        """Read every record back (a restart); a record that cannot be read is skipped, not fatal."""
        with self._lock:
            self._sandboxes = {r.id: r for r in _read_all(self._dir("sandboxes"), SandboxRecord)}
            self._containers = {r.id: r for r in _read_all(self._dir("containers"), ContainerRecord)}

    def _dir(self, kind: str) -> str:
        return os.path.join(self.root, kind)

    def sandboxes(self) -> list[SandboxRecord]:
        with self._lock:
            return list(self._sandboxes.values())

    def containers(self, sandbox_id: str | None = None) -> list[ContainerRecord]:
        with self._lock:
            return [c for c in self._containers.values() if sandbox_id in (None, c.sandbox_id)]

    def sandbox(self, ident: str) -> SandboxRecord | None:
        """By ID or a unique prefix of one."""
        with self._lock:
            found: SandboxRecord | None = _by_prefix(self._sandboxes, ident)
            return found

    def container(self, ident: str) -> ContainerRecord | None:
        with self._lock:
            found: ContainerRecord | None = _by_prefix(self._containers, ident)
            return found

    def sandbox_named(self, name: str, uid: str, namespace: str, attempt: int) -> SandboxRecord | None:
        with self._lock:
            return next(
                (s for s in self._sandboxes.values()
                 if (s.name, s.uid, s.namespace, s.attempt) == (name, uid, namespace, attempt)),
                None,
            )  # fmt: skip

    def container_named(self, sandbox_id: str, name: str, attempt: int) -> ContainerRecord | None:
        with self._lock:
            return next(
                (c for c in self._containers.values()
                 if (c.sandbox_id, c.name, c.attempt) == (sandbox_id, name, attempt)),
                None,
            )  # fmt: skip

    def put_sandbox(self, record: SandboxRecord) -> None:
        with self._lock:
            _write(os.path.join(self._dir("sandboxes"), record.id + ".json"), record)
            self._sandboxes[record.id] = record

    def put_container(self, record: ContainerRecord) -> None:
        with self._lock:
            _write(os.path.join(self._dir("containers"), record.id + ".json"), record)
            self._containers[record.id] = record

    def mark_stopped(self, sandbox_id: str) -> None:
        with self._lock:
            record = self._sandboxes.get(sandbox_id)
            if record is not None and not record.stopped:
                self.put_sandbox(dataclasses.replace(record, stopped=True))

    def drop_sandbox(self, ident: str) -> None:
        with self._lock:
            _unlink(os.path.join(self._dir("sandboxes"), ident + ".json"))
            self._sandboxes.pop(ident, None)

    def drop_container(self, ident: str) -> None:
        with self._lock:
            _unlink(os.path.join(self._dir("containers"), ident + ".json"))
            self._containers.pop(ident, None)


def lookup_container(data_dir: str, ident: str) -> ContainerRecord | None:
    """A container's record straight from disk (for parts that hold no State: streaming, logs)."""
    state = State(data_dir)
    state.load()
    return state.container(ident)


def _by_prefix(records: dict[str, Any], ident: str) -> Any:
    if not ident:
        return None
    if ident in records:
        return records[ident]
    matches = [r for key, r in records.items() if key.startswith(ident)]
    return matches[0] if len(matches) == 1 else None


def _read_all(directory: str, kind: type[Any]) -> list[Any]:
    records = []
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except FileNotFoundError:
        return []
    names_of = {f.name for f in dataclasses.fields(kind)}
    for name in names:
        try:
            with open(os.path.join(directory, name)) as file:
                data = json.load(file)
            records.append(kind(**{k: v for k, v in data.items() if k in names_of}))
        except (OSError, ValueError, TypeError):
            continue  # half a record from a crash: its sandbox is found again from the pods
    return records


def _write(path: str, record: Any) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    temp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"  # unique: two writers never share it
    with open(temp, "w") as file:
        json.dump(dataclasses.asdict(record), file, indent=1, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
