"""Pods on disk, rkt's way: ``$dir/pods/<state>/<uuid>/``, moved between states by rename, no daemon.

States: embryo → prepare → prepared → run → exited-garbage, and garbage for pods that never ran.
Liveness: while a pod runs, its nspawn holds an flock on ``lock`` in the pod directory (stage1
starts nspawn under ``flock --no-fork``), and the kernel drops it when nspawn dies, however it dies.
In the moment between the rename to ``run/`` and nspawn taking the lock, the pod's host unit is
already active, so "lock held, or unit active" is the running test. A prepare in progress holds
the same lock itself.
"""

from __future__ import annotations

import enum
import os
import subprocess
import time
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from stage0.errors import Error, InputError
from stage0.store.locks import lock_held, locked, remove_tree
from stage1.abi import PodPaths

STARTING_GRACE = 60.0  # seconds a pod in run/ may take to get its unit started


class PodNotFound(Error):
    hint = "see 'nspod list'"


class DirState(enum.StrEnum):
    EMBRYO = "embryo"
    PREPARE = "prepare"
    PREPARED = "prepared"
    RUN = "run"
    EXITED_GARBAGE = "exited-garbage"
    GARBAGE = "garbage"


class PodState(enum.StrEnum):
    """What ``list`` and ``status`` show."""

    EMBRYO = "embryo"
    PREPARING = "preparing"
    ABORTED_PREPARE = "aborted prepare"
    PREPARED = "prepared"
    RUNNING = "running"
    EXITED = "exited"
    EXITED_GARBAGE = "exited garbage"
    GARBAGE = "garbage"

    @property
    def alive(self) -> bool:
        return self in (PodState.PREPARING, PodState.RUNNING)


def unit_active(paths: PodPaths) -> bool:
    try:
        with open(paths.unit) as file:
            name = file.read().strip()
    except FileNotFoundError:
        return False
    result = subprocess.run(["systemctl", "is-active", "--quiet", name], check=False)
    return result.returncode == 0


@dataclass(frozen=True, slots=True)
class Pod:
    uuid: str
    where: DirState
    path: str

    @property
    def paths(self) -> PodPaths:
        return PodPaths(self.path)

    def state(self) -> PodState:
        match self.where:
            case DirState.EMBRYO:
                return PodState.EMBRYO
            case DirState.PREPARE:
                return PodState.PREPARING if lock_held(self.paths.lock) else PodState.ABORTED_PREPARE
            case DirState.PREPARED:
                return PodState.PREPARED
            case DirState.RUN:
                running = lock_held(self.paths.lock) or unit_active(self.paths) or self._starting()
                return PodState.RUNNING if running else PodState.EXITED
            case DirState.EXITED_GARBAGE:
                return PodState.EXITED_GARBAGE
            case DirState.GARBAGE:
                return PodState.GARBAGE

    def _starting(self) -> bool:
        """Just moved to run/ and stage1 has not started the unit yet (a crash here ages out)."""
        return (
            not os.path.exists(self.paths.started)
            and time.time() - os.stat(self.path).st_ctime < STARTING_GRACE
        )

    def created(self) -> float:
        return (
            os.path.getmtime(self.paths.created)
            if os.path.exists(self.paths.created)
            else os.path.getmtime(self.path)
        )

    def started(self) -> float | None:
        try:
            with open(self.paths.started) as file:
                return float(file.read().strip())
        except (OSError, ValueError):
            return None

    def app_status(self) -> dict[str, int]:
        """Exit codes the pod's reapers recorded, by app."""
        codes: dict[str, int] = {}
        try:
            names = os.listdir(self.paths.status)
        except FileNotFoundError:
            return codes
        for name in sorted(names):
            if name.endswith(".tmp"):
                continue
            with open(os.path.join(self.paths.status, name)) as file:
                text = file.read().strip()
            if text.lstrip("-").isdigit():
                codes[name] = int(text)
        return codes


class Pods:
    """The pods directory under ``--dir``."""

    def __init__(self, data_dir: str) -> None:
        self.root = os.path.join(data_dir, "pods")

    def _dir(self, where: DirState) -> str:
        return os.path.join(self.root, where.value)

    def ensure(self) -> None:
        for where in DirState:
            os.makedirs(self._dir(where), mode=0o700, exist_ok=True)

    @contextmanager
    def create(self, uuid: str | None = None) -> Iterator[Pod]:
        """A new pod in ``prepare/``, its lock held for the block (an aborted block leaves it to gc)."""
        self.ensure()
        uuid = uuid or str(uuidlib.uuid4())
        embryo = os.path.join(self._dir(DirState.EMBRYO), uuid)
        os.mkdir(embryo, 0o700)
        paths = PodPaths(embryo)
        with locked(paths.lock):  # the lock moves with the directory: it is on the inode
            with open(paths.created, "w") as file:
                file.write(f"{time.time()}\n")
            prepare = os.path.join(self._dir(DirState.PREPARE), uuid)
            os.rename(embryo, prepare)
            yield Pod(uuid, DirState.PREPARE, prepare)

    def move(self, pod: Pod, to: DirState) -> Pod:
        target = os.path.join(self._dir(to), pod.uuid)
        try:
            os.rename(pod.path, target)
        except FileNotFoundError:
            raise PodNotFound(f"pod {pod.uuid} is no longer {pod.where} (another nspod moved it)") from None
        return Pod(pod.uuid, to, target)

    def all(self) -> list[Pod]:
        found = []
        for where in DirState:
            try:
                names = os.listdir(self._dir(where))
            except FileNotFoundError:
                continue
            found += [Pod(name, where, os.path.join(self._dir(where), name)) for name in names]
        return sorted(found, key=lambda p: p.created())

    def find(self, prefix: str) -> Pod:
        """A pod by any unique prefix of its UUID."""
        if not prefix:
            raise InputError("no pod UUID given", hint="see 'nspod list'")
        matches = [p for p in self.all() if p.uuid.startswith(prefix.lower())]
        if not matches:
            raise PodNotFound(f"no pod {prefix}")
        if len(matches) > 1:
            raise PodNotFound(f"{prefix} matches {len(matches)} pods", hint="give more of the UUID")
        return matches[0]

    def remove(self, pod: Pod) -> None:
        remove_tree(pod.path)


def read_uuid_file(path: str) -> str:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError as error:
        raise InputError(f"cannot read UUID file {path}: {error.strerror}") from None
