"""The one module that talks to systemd over D-Bus (pystemd, blocking calls).

Only this file sees bytes, CamelCase property names and D-Bus signatures. Callers hand in a
:class:`~stage1.transient.TransientService` and get :class:`UnitStatus` values and
:class:`SystemdError` subclasses back.

Waiting is race-free: the signal matches are installed and ``Subscribe()`` is called when the
connection opens, before any unit is started; a signal only wakes the loop, which then reads the
unit's state itself, so a signal that arrived before the method reply cannot be missed.
"""

from __future__ import annotations

import errno
import logging
import select
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from stage1.abi import Error
from stage1.transient import Property, TransientService, render_properties

log = logging.getLogger(__name__)

SD = b"org.freedesktop.systemd1"
MACHINED = b"org.freedesktop.machine1"
MACHINED_PATH = b"/org/freedesktop/machine1"
MACHINED_MANAGER = b"org.freedesktop.machine1.Manager"
MACHINE = b"org.freedesktop.machine1.Machine"
SD_PATH = b"/org/freedesktop/systemd1"
MANAGER = b"org.freedesktop.systemd1.Manager"
UNIT = b"org.freedesktop.systemd1.Unit"
SERVICE = b"org.freedesktop.systemd1.Service"
PROPERTIES = b"org.freedesktop.DBus.Properties"

EXEC_CODES = {1: "exited", 2: "killed", 3: "dumped"}  # siginfo CLD_* codes in ExecMainCode


class SystemdError(Error):
    kind = "unavailable"  # stage0/errors.py ErrorKind
    hint = "check 'systemctl status' and 'journalctl -xe' on the host"


class BusUnavailable(SystemdError):
    hint = "is systemd the init system and dbus running? ('systemctl is-system-running')"


class AccessDenied(SystemdError):
    kind = "permission-denied"  # stage0/errors.py ErrorKind
    hint = "run nspod as root"


class UnitNotFound(SystemdError):
    kind = "not-found"  # stage0/errors.py ErrorKind
    hint = "see 'systemctl list-units' for what is loaded"


class UnitExists(SystemdError):
    kind = "conflict"  # stage0/errors.py ErrorKind
    hint = "a unit of that name is loaded already; stop it or choose another name"


class WaitTimeout(SystemdError):
    hint = "the unit is still running; see 'systemctl status' for what it is doing"


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


def translate(error: Exception, doing: str) -> SystemdError:
    """A pystemd/D-Bus exception as one of ours (pystemd loses the D-Bus name on subclasses)."""
    kind = type(error).__name__
    name = _text(getattr(error, "err_name", ""))  # bytes or str, by pystemd's version and path
    detail = _text(getattr(error, "err_message", "")) or str(error)
    cls: type[SystemdError]
    if kind == "DBusNoSuchUnitError" or name.endswith(".NoSuchUnit"):
        cls = UnitNotFound
    elif name.endswith(".UnitExists"):
        cls = UnitExists
    elif kind in (
        "DBusAccessDeniedError",
        "DBusInteractiveAuthorizationRequiredError",
        "DBusAuthFailedError",
    ):
        cls = AccessDenied
    elif kind in (
        "DBusFileNotFoundError",
        "DBusConnectionRefusedError",
        "DBusNoServerError",
        "DBusDisconnectedError",
    ):
        cls = BusUnavailable
    else:
        cls = SystemdError
    return cls(f"{doing}: {detail}")


def _interrupted(error: Exception) -> bool:
    """sd-bus gave up on a system call a signal interrupted (EINTR)."""
    return type(error).__name__ == "DBusInterruptedError" or getattr(error, "errno", None) in (
        -errno.EINTR,
        errno.EINTR,
    )


@dataclass(frozen=True, slots=True)
class UnitStatus:
    name: str
    active_state: str  # active, activating, deactivating, inactive, failed, …
    sub_state: str
    result: str  # success, exit-code, signal, timeout, …
    exec_main_status: int  # exit code, or signal number when killed
    exec_main_code: int  # 1 exited, 2 killed, 3 dumped, 0 not yet
    main_pid: int
    invocation_id: str
    job_queued: bool = False  # a start or stop job waits: "inactive" then may mean "not yet"

    @property
    def finished(self) -> bool:
        return self.active_state in ("inactive", "failed") and not self.job_queued

    @property
    def how(self) -> str:
        return EXEC_CODES.get(self.exec_main_code, "running")


def _variant_args(props: tuple[Property, ...]) -> list[tuple[int, Any]]:
    """a(sv) in pystemd's low-level argument form."""
    from pystemd.dbuslib import apply_signature

    args: list[tuple[int, Any]] = [(ord("a"), b"(sv)")]
    for prop in props:
        args += [(ord("r"), b"sv"), (ord("s"), prop.name.encode()), (ord("v"), prop.signature.encode())]
        args += apply_signature(prop.signature.encode(), [prop.value])
        args += [(-1, None), (-1, None)]
    args.append((-1, None))
    return args


class Systemd:
    """A connection to the system manager (``machine``: a running pod's own, through machined). Use
    as a context manager; the constructor does no I/O."""

    def __init__(self, machine: str | None = None) -> None:
        self._machine = machine
        self._bus: Any = None
        self._woken = False
        self._callback: Any = None

    def __enter__(self) -> Systemd:
        from pystemd.dbuslib import DBus, DBusMachine

        def wake(*_: Any, **__: Any) -> None:
            self._woken = True

        # pystemd keeps only a borrowed pointer to the callback: hold the reference ourselves.
        self._callback = wake
        try:
            self._bus = DBusMachine(self._machine.encode()) if self._machine else DBus()
            self._bus.open()
            # Matches before Subscribe(), both before any start: nothing can slip past us.
            self._bus.match_signal(SD, SD_PATH, MANAGER, b"JobRemoved", wake)
            self._bus.match_signal(SD, None, PROPERTIES, b"PropertiesChanged", wake)
            self._call(SD_PATH, MANAGER, b"Subscribe", [])
        except Exception as error:
            if isinstance(error, SystemdError):
                raise
            raise translate(error, "connecting to the system bus") from error
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bus is not None:
            self._bus.close()  # also drops every AddRef we hold
            self._bus = None

    # -- plumbing -------------------------------------------------------------------------------

    def _call(
        self, path: bytes, iface: bytes, method: bytes, args: list[tuple[int, Any]], dest: bytes = SD
    ) -> Any:
        log.debug("D-Bus call %s.%s on %s", iface.decode(), method.decode(), path.decode())
        while True:
            try:
                return self._bus.call_method(dest, path, iface, method, args).body
            except Exception as error:
                if not _interrupted(error):  # a signal (Ctrl-C) arrived mid-call: just ask again
                    raise translate(error, f"{method.decode()} failed") from error

    def _unit_path(self, name: str) -> bytes:
        from pystemd.dbuslib import apply_signature

        path: bytes = self._call(SD_PATH, MANAGER, b"GetUnit", apply_signature(b"s", [name.encode()]))
        return path

    def _get(self, path: bytes, iface: bytes, prop: bytes, signature: bytes, dest: bytes = SD) -> Any:
        while True:
            try:
                return self._bus.get_property(dest, path, iface, prop, signature)
            except Exception as error:
                if not _interrupted(error):
                    raise translate(error, f"reading {prop.decode()}") from error

    def _drain(self, timeout: float) -> None:
        """Dispatch queued messages; if none arrived, block up to ``timeout`` seconds for traffic."""
        self._woken = False
        try:
            while not self._bus.process().is_empty():
                pass
            if not self._woken:
                # select, not the bus's own wait: pystemd holds the GIL through that one, and the
                # threads relaying a foreground pod's output would stall meanwhile
                select.select([self._bus.get_fd()], [], [], timeout)
                while not self._bus.process().is_empty():
                    pass
        except Exception as error:
            if not _interrupted(error):  # a signal only wakes us up early
                raise translate(error, "waiting for systemd") from error

    # -- the API ----------------------------------------------------------------------------------

    def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for any unit's change (a supervisor polling its units
        reads them again as soon as one changed, not a poll interval later)."""
        self._drain(timeout)

    def start(self, service: TransientService) -> None:
        """Start a transient service (mode ``fail``); returns once systemd has queued its start job."""
        from pystemd.dbuslib import apply_signature

        props = service.properties()
        log.debug("StartTransientUnit %s\n%s", service.name, render_properties(props))
        args = apply_signature(b"ss", [service.name.encode(), b"fail"]) + _variant_args(props)
        args += [(ord("a"), b"(sa(sv))"), (-1, None)]  # no auxiliary units
        self._call(SD_PATH, MANAGER, b"StartTransientUnit", args)

    def start_unit(self, name: str, *, timeout: float = 60.0) -> UnitStatus:
        """Start a unit from its file and wait for the start job to finish (a service of Type=exec
        is then running, or has already ended)."""
        from pystemd.dbuslib import apply_signature

        self._call(SD_PATH, MANAGER, b"StartUnit", apply_signature(b"ss", [name.encode(), b"replace"]))
        deadline = time.monotonic() + timeout
        while (status := self.status(name)).job_queued:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"{name} is still starting after {timeout:g}s")
            self._drain(min(left, 1.0))
        return status

    def ref(self, name: str) -> None:
        """Load the unit (from its file, if need be) and hold it loaded while we are connected:
        systemd would otherwise forget an ended unit, exit code and all."""
        from pystemd.dbuslib import apply_signature

        path = self._call(SD_PATH, MANAGER, b"LoadUnit", apply_signature(b"s", [name.encode()]))
        self._call(path, UNIT, b"Ref", [])

    def times(self, name: str) -> tuple[float, float]:
        """When the unit's main process started and exited (seconds since the epoch; 0: not yet)."""
        path = self._unit_path(name)
        started = int(self._get(path, SERVICE, b"ExecMainStartTimestamp", b"t"))
        exited = int(self._get(path, SERVICE, b"ExecMainExitTimestamp", b"t"))
        return started / 1e6, exited / 1e6

    def bind_mount(self, machine: str, source: str, dest: str, *, read_only: bool = False) -> None:
        """``machinectl bind --mkdir``: mount ``source`` of the host at ``dest`` in a running machine
        (through nspawn's propagation directory; needs the host's / with shared propagation)."""
        from pystemd.dbuslib import apply_signature

        values = [machine.encode(), source.encode(), dest.encode(), read_only, True]
        args = apply_signature(b"sssbb", values)
        self._call(MACHINED_PATH, MACHINED_MANAGER, b"BindMountMachine", args, dest=MACHINED)

    def status(self, name: str) -> UnitStatus:
        path = self._unit_path(name)
        service = name.endswith(".service")  # a mount, a socket…: the unit's own state alone
        return UnitStatus(
            name=name,
            active_state=self._get(path, UNIT, b"ActiveState", b"s").decode(),
            sub_state=self._get(path, UNIT, b"SubState", b"s").decode(),
            result=self._get(path, SERVICE, b"Result", b"s").decode() if service else "",
            exec_main_status=int(self._get(path, SERVICE, b"ExecMainStatus", b"i")) if service else 0,
            exec_main_code=int(self._get(path, SERVICE, b"ExecMainCode", b"i")) if service else 0,
            main_pid=int(self._get(path, SERVICE, b"MainPID", b"u")) if service else 0,
            invocation_id=bytes(self._get(path, UNIT, b"InvocationID", b"ay")).hex(),
            job_queued=self._get(path, UNIT, b"Job", b"(uo)")[0] != 0,
        )

    def exists(self, name: str) -> bool:
        try:
            self._unit_path(name)
        except UnitNotFound:
            return False
        return True

    def wait(self, name: str, *, until: str = "finished", timeout: float = 60.0) -> UnitStatus:
        """Block until the unit is ``finished`` (inactive or failed) or ``active``."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(name)
            if status.finished or (until == "active" and status.active_state == "active"):
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"{name} is still {status.active_state} after {timeout:g}s")
            self._drain(min(left, 1.0))

    def stop(self, name: str, *, timeout: float = 60.0) -> UnitStatus | None:
        """Stop the unit and wait until it is down; None when systemd has already unloaded it."""
        self.request_stop(name)
        return self.wait_gone(name, timeout=timeout)

    def request_stop(self, name: str) -> None:
        """Queue the unit's stop job and return at once."""
        from pystemd.dbuslib import apply_signature

        self._call(SD_PATH, MANAGER, b"StopUnit", apply_signature(b"ss", [name.encode(), b"replace"]))

    def wait_gone(self, name: str, *, timeout: float = 60.0) -> UnitStatus | None:
        """Like :meth:`wait`, but a unit that was unloaded (garbage-collected) counts as ended."""
        try:
            return self.wait(name, timeout=timeout)
        except UnitNotFound:
            return None

    def kill(self, name: str, signal: int, *, whom: str = "all") -> None:
        from pystemd.dbuslib import apply_signature

        args = apply_signature(b"ssi", [name.encode(), whom.encode(), signal])
        self._call(SD_PATH, MANAGER, b"KillUnit", args)

    def set_properties(self, name: str, props: tuple[Property, ...]) -> None:
        """``systemctl set-property --runtime``: a running unit's settings, until its manager ends."""
        from pystemd.dbuslib import apply_signature

        args = apply_signature(b"sb", [name.encode(), True]) + _variant_args(props)
        log.debug("set properties of %s:\n%s", name, render_properties(props))
        self._call(SD_PATH, MANAGER, b"SetUnitProperties", args)

    def reset_failed(self, name: str) -> None:
        from pystemd.dbuslib import apply_signature

        self._call(SD_PATH, MANAGER, b"ResetFailedUnit", apply_signature(b"s", [name.encode()]))

    def reload(self) -> None:
        """``systemctl daemon-reload``: returns once systemd has read its unit files again."""
        self._call(SD_PATH, MANAGER, b"Reload", [])

    def machine_leader(self, machine: str) -> int:
        """The PID of a registered machine's leader (the pod's systemd), from systemd-machined."""
        from pystemd.dbuslib import apply_signature

        args = apply_signature(b"s", [machine.encode()])
        path = self._call(MACHINED_PATH, MACHINED_MANAGER, b"GetMachine", args, dest=MACHINED)
        return int(self._get(path, MACHINE, b"Leader", b"u", dest=MACHINED))

    def status_text(self, name: str) -> str:
        """A service's STATUS= (sd_notify), e.g. a pod@ unit's "2/2 apps ready"."""
        return str(self._get(self._unit_path(name), SERVICE, b"StatusText", b"s").decode())

    def restart_unit(self, name: str) -> None:
        """``systemctl restart --no-block``: returns once systemd has queued the restart job."""
        from pystemd.dbuslib import apply_signature

        self._call(SD_PATH, MANAGER, b"RestartUnit", apply_signature(b"ss", [name.encode(), b"replace"]))

    def unref(self, name: str) -> None:
        """Let go of the AddRef we hold, so systemd may unload the finished unit."""
        self._call(self._unit_path(name), UNIT, b"Unref", [])


def run_transient(argv: list[str], what: str) -> None:
    """A transient unit whose settings are unit-file assignments (``systemd-run -p``, as
    stage1/hostplan.py writes them): systemd-run translates them to D-Bus properties, every kind
    systemd knows, and returns once the start job is done."""
    import subprocess

    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemdError(f"{what} failed: {done.stderr.strip() or done.returncode}")
