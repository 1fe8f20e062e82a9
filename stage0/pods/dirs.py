"""Pods on disk, rkt's way: ``$dir/pods/<state>/<uuid>/``, moved between states by rename, no daemon.

States: embryo → prepare → prepared → run → exited-garbage, and garbage for pods that never ran.
Liveness comes from the pod's own locks, never from a unit name it may share with a later pod
(``pod@web`` runs many pods over time): while a pod runs, its nspawn holds an flock on ``lock``
(stage1 starts nspawn under ``flock --no-fork``); from before the rename to ``run/`` until nspawn
has that lock, the nspod starting it holds ``starting``. The kernel drops both when their holder
dies, however it dies, so a pod whose starter was killed before its unit started reads "exited" at
once. A prepare in progress holds ``lock`` itself.

Every reader takes a pod that vanishes or changes state under it (another nspod's gc, rm or
start) as a normal event: it is skipped, or reported as gone, never a crash.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
import time
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass

from stage0.errors import Error, ErrorKind, InputError, PermissionDeniedError
from stage0.host.access import GROUP
from stage0.host.mounts import remove_unmounted
from stage0.images.store.locks import lock_held, locked, try_lock
from stage1.abi import PodPaths

REMOVING = ".removing"  # pods being deleted; no state lists it
NAMES = ".names"  # a lock file per pod name: held by whoever checks a new pod's name, until it is in run/
EMBRYO_GRACE = 10.0  # seconds: an unlocked embryo younger than this may be one being made


class PodNotFound(Error):
    kind = ErrorKind.NOT_FOUND
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


def _read(path: str) -> str | None:
    """A small file's text, or None when it is missing (or its pod moved on)."""
    try:
        with open(path) as file:
            return file.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


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
                # its maker holds the lock from just after mkdir; an old one without is a killed maker's
                abandoned = time.time() - self.created() > EMBRYO_GRACE and not lock_held(self.paths.lock)
                return PodState.ABORTED_PREPARE if abandoned else PodState.EMBRYO
            case DirState.PREPARE:
                return PodState.PREPARING if lock_held(self.paths.lock) else PodState.ABORTED_PREPARE
            case DirState.PREPARED:
                return PodState.PREPARED
            case DirState.RUN:
                running = lock_held(self.paths.lock) or lock_held(self.paths.starting)
                return PodState.RUNNING if running else PodState.EXITED
            case DirState.EXITED_GARBAGE:
                return PodState.EXITED_GARBAGE
            case DirState.GARBAGE:
                return PodState.GARBAGE

    def created(self) -> float:
        """When the pod was made; raises FileNotFoundError when it is gone."""
        try:
            return os.path.getmtime(self.paths.created)
        except FileNotFoundError:
            return os.path.getmtime(self.path)

    def started(self) -> float | None:
        try:
            return float(_read(self.paths.started) or "")
        except ValueError:
            return None

    def unit(self) -> str | None:
        """The host unit the pod ran (or runs) as: from its start on, and for a pod@ pod from its
        prepare on."""
        return _read(self.paths.unit) or None

    def machine(self) -> str | None:
        """The pod's machine name (``--name``, the pod@ instance, or nspod-UUID)."""
        try:
            return str(json.loads(_read(self.paths.spec) or "{}").get("machine") or "") or None
        except ValueError:
            return None

    def image_ids(self) -> list[str]:
        """The IDs of the images its apps run, in app order."""
        return (_read(self.paths.images) or "").split()

    def app_status(self) -> dict[str, int]:
        """Exit codes the pod's reapers recorded, by app."""
        codes: dict[str, int] = {}
        try:
            names = os.listdir(self.paths.status)
        except FileNotFoundError:
            return codes
        for name in sorted(names):  # an app's name has no ".": <app>.tmp, .signal, .started are not apps
            text = "" if "." in name else _read(os.path.join(self.paths.status, name)) or ""
            if text.lstrip("-").isdigit():
                codes[name] = int(text)
        return codes

    def app_signals(self) -> dict[str, str]:
        """The signals that ended apps (``SIGTERM``), by app; their codes are 128 + the number."""
        from stage1.abi import signal_name

        named = {app: signal_name(_read(self.paths.app_signal(app))) for app in self.app_status()}
        return {app: name for app, name in named.items() if name}


class Pods:
    """The pods directory under ``--dir``."""

    def __init__(self, data_dir: str) -> None:
        self.root = os.path.join(data_dir, "pods")

    def _dir(self, where: DirState) -> str:
        return os.path.join(self.root, where.value)

    def ensure(self) -> None:
        for where in DirState:
            os.makedirs(self._dir(where), mode=0o750, exist_ok=True)  # group nspod reads (access.py)

    def gc_lock(self) -> AbstractContextManager[None]:
        """Held by a gc for its whole run: two at once take turns instead of racing."""
        self.ensure()
        return locked(os.path.join(self.root, "gc.lock"))

    @contextmanager
    def create(self, uuid: str | None = None) -> Iterator[Pod]:
        """A new pod in ``prepare/``, its lock held for the block. A block that fails removes it;
        one that is killed leaves an "aborted prepare" for gc."""
        self.ensure()
        uuid = uuid or str(uuidlib.uuid4())
        embryo = os.path.join(self._dir(DirState.EMBRYO), uuid)
        os.mkdir(embryo, 0o750)  # its stage1/ (the pod's root) is 0700
        paths = PodPaths(embryo)
        try:
            with locked(paths.lock):  # the lock moves with the directory: it is on the inode
                with open(paths.created, "w") as file:
                    file.write(f"{time.time()}\n")
                prepare = os.path.join(self._dir(DirState.PREPARE), uuid)
                os.rename(embryo, prepare)
                try:
                    yield Pod(uuid, DirState.PREPARE, prepare)
                except BaseException:
                    self.remove(Pod(uuid, DirState.PREPARE, prepare))  # nothing half-made stays behind
                    raise
        except BaseException:
            remove_unmounted(embryo)  # not even made (a full disk): no embryo for gc to find later
            raise

    def starting(self, pod: Pod) -> int:
        """Take ``pod``'s starting lock (see the module's docstring) and return its descriptor: the
        caller keeps it open until the pod has ended, or hands it on to nspawn (it is inheritable)."""
        fd = os.open(pod.paths.starting, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def move(self, pod: Pod, to: DirState) -> Pod:
        target = os.path.join(self._dir(to), pod.uuid)
        try:
            os.rename(pod.path, target)
        except FileNotFoundError:
            raise PodNotFound(f"pod {pod.uuid} is no longer {pod.where} (another nspod moved it)") from None
        return Pod(pod.uuid, to, target)

    def all(self) -> list[Pod]:
        """Every pod, oldest first; one that moves on while we look is seen where it went, or not."""
        found: list[tuple[float, Pod]] = []
        for where in DirState:
            try:
                names = os.listdir(self._dir(where))
            except FileNotFoundError:
                continue
            except PermissionError:
                raise PermissionDeniedError(
                    f"cannot read the pods in {self.root}: permission denied",
                    hint=f"run nspod as root, or join group {GROUP} (pods made before the group "
                    f"existed stay root's: chgrp {GROUP} {self.root} {self.root}/*)",
                ) from None
            for name in names:
                pod = Pod(name, where, os.path.join(self._dir(where), name))
                try:
                    found.append((pod.created(), pod))
                except FileNotFoundError:
                    continue  # moved or removed in between: its new place was listed, or it is gone
        return [pod for _, pod in sorted(found, key=lambda item: item[0])]

    def find(self, ref: str) -> Pod:
        """A pod by its name (``--name``, the pod@ instance; the running or else the newest pod of
        that name) or by any unique prefix of its UUID."""
        if not ref:
            raise InputError("no pod given", hint="give a pod's name or UUID (see 'nspod list')")
        pods = self.all()
        named = [p for p in pods if p.machine() == ref]
        if named:
            running = [p for p in named if p.where is DirState.RUN and p.state() is PodState.RUNNING]
            return (running or named)[-1]
        matches = [p for p in pods if p.uuid.startswith(ref.lower())]
        if not matches:
            raise PodNotFound(f"no pod {ref}")
        if len(matches) > 1:
            raise PodNotFound(f"{ref} matches {len(matches)} pods", hint="give more of the UUID")
        return matches[0]

    def running_named(self, name: str) -> Pod | None:
        """The pod of machine name ``name`` that runs, or is being started, here (None: none)."""
        named = (p for p in self.all() if p.where is DirState.RUN and p.machine() == name)
        return next((p for p in named if p.state() is PodState.RUNNING), None)

    @contextmanager
    def naming(self, name: str | None, *, starting: bool) -> Iterator[None]:
        """Check a new pod's name (:meth:`check_name`); for a pod ``starting``, hold the name from
        the check until the pod is in run/ (where the next check sees it), so that of two nspods
        starting pods of one name at once, one is refused before it makes anything."""
        from stage0.errors import UsageError
        from stage0.pods.requests import check_pod_name

        if name is None or not starting:
            if name is not None:
                self.check_name(name, starting=False)
            yield
            return
        directory = os.path.join(self.root, NAMES)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, check_pod_name(name))
        while True:  # until the file we locked is the one at path (its last holder removes it)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UsageError(
                    f"another nspod is starting a pod named {name}", hint="choose another name"
                ) from None
            with suppress(FileNotFoundError):
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break
            os.close(fd)
        try:
            self.check_name(name, starting=True)
            yield
        finally:
            os.unlink(path)  # while it is locked: no file is left per name ever used
            os.close(fd)

    def check_name(self, name: str, *, starting: bool) -> None:
        """Refuse a pod name systemd does not take for a machine and, for a pod ``starting``, one
        that a pod here, or any machine on the host, runs as. Checked before anything is made for
        the pod: nspawn would refuse it only once the pod is made and addressed."""
        from stage0.errors import UsageError
        from stage0.host.executor import machine_registered
        from stage0.pods.requests import check_pod_name

        check_pod_name(name)
        running = self.running_named(name) if starting else None
        if running is not None:
            raise UsageError(
                f"pod {running.uuid} is running as {name}",
                hint=f"stop it first ('nspod stop {name}'), or choose another name",
            )
        if starting and machine_registered(name):
            raise UsageError(
                f"a machine named {name} is running on this host",
                hint=f"'machinectl status {name}' says what it is; choose another name",
            )

    def of_unit(self, unit: str) -> list[Pod]:
        """The pods that ran, or were being made to run, as ``unit`` (a pod@ instance runs a new pod
        at each start)."""
        return [p for p in self.all() if p.where in (DirState.RUN, DirState.PREPARE) and p.unit() == unit]

    def remove(self, pod: Pod) -> None:
        """Remove ``pod`` all at once: renamed out of every listing first, then deleted, so that a
        remover killed halfway leaves no half-deleted pod behind (gc sweeps what it leaves). What a
        dead process left mounted in it is detached first (stage0/host/mounts.py). The remover holds
        ``.removing/<uuid>.lock`` from before the rename: a sweep tells its work from a dead one's."""
        removing = os.path.join(self.root, REMOVING)
        os.makedirs(removing, mode=0o700, exist_ok=True)
        target = os.path.join(removing, pod.uuid)
        with locked(target + ".lock"):
            try:
                os.rename(pod.path, target)
            except FileNotFoundError:
                pass  # another nspod removed or moved it meanwhile
            else:
                remove_unmounted(
                    target
                )  # a mount a killed 'app add' left is detached, never deleted through
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target + ".lock")

    def sweep_removing(self) -> None:
        """Finish removals whose remover was killed: its lock is free (without a lock file, one
        older than a minute: not one under way)."""
        removing = os.path.join(self.root, REMOVING)
        try:
            names = os.listdir(removing)
        except FileNotFoundError:
            return
        for name in names:
            path = os.path.join(removing, name.removesuffix(".lock"))
            fd = try_lock(path + ".lock")
            if fd is None and name.endswith(".lock"):
                continue  # held (a removal under way), or swept with its pod just now
            try:
                if fd is None:  # no lock file: a removal by an older nspod, or one just beginning
                    try:
                        if time.time() - os.lstat(path).st_ctime <= 60:
                            continue
                    except FileNotFoundError:
                        continue
                remove_unmounted(path)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + ".lock")
            finally:
                if fd is not None:
                    os.close(fd)


def read_uuid_file(path: str) -> str:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError as error:
        raise InputError(f"cannot read UUID file {path}: {error.strerror}") from None
