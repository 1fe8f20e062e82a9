"""One pod's stage1, typed (issue #25): made from the stage1 the pod recorded when it was prepared
(``flavor`` in its directory), so every verb on the pod, the CLI's, the API's, the CRI's and the
pool's, runs that stage1 and never another flavor's.

The command lines are planned purely (:meth:`Stage1Client.argv`, :meth:`Stage1Client.command`);
the calls go through stage0/host/executor.py, the one module of stage0 that reaches past
``stage1.abi``. The in-process paths of an app sandbox and of the pool (``app_states``,
``join_app``, ``start_app``, ``relay``, ``warm``, the CRI's ``enter_command``) are the built-in
nspawn flavor's: another flavor's pod is refused there, not handed to nspawn's code.
"""

from __future__ import annotations

import shlex
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from stage1.abi import ENTRYPOINTS

if TYPE_CHECKING:
    from stage0.options import GlobalOptions

BUILT_IN = {"": "stage1", "fly": "stage1.fly.pod"}  # a recorded stage1 → its module


@dataclass(frozen=True, slots=True)
class Entering:
    """``enter``'s options beyond the app, ``nspod exec``'s: more environment (``K=V``), another
    user (``UID:GID``) or working directory, a pty or none (None: enter's own choice, a pty when
    stdin is a terminal)."""

    env: tuple[str, ...] = ()
    user: str | None = None
    workdir: str | None = None
    tty: bool | None = None


NO_OPTIONS = Entering()


@dataclass(frozen=True, slots=True)
class Stage1Client:
    """The stage1 of the pod in ``pod_dir``: ``stage1`` as recorded ("" nspawn, "fly", or a
    third-party stage1's command line); ``debug``: its ``--debug``."""

    pod_dir: str
    stage1: str = ""
    debug: bool = False

    @classmethod
    def of(cls, options: GlobalOptions, pod_dir: str) -> Stage1Client:
        """The pod's recorded stage1 (on no pod, sweep's pods directory: the invocation's)."""
        from stage0.host.executor import resolve

        return cls(pod_dir, resolve(options.stage1, pod_dir), options.debug)

    @classmethod
    def recorded(cls, pod_dir: str) -> Stage1Client:
        """The pod's recorded stage1, for the paths with no invocation's options (the pool's)."""
        from stage0.host.executor import resolve

        return cls(pod_dir, resolve("", pod_dir))

    @property
    def flavor(self) -> str:
        """How the stage1 is shown: ``nspawn``, ``fly`` or the third-party command line."""
        return self.stage1 or "nspawn"

    # --- planning: pure ---

    def argv(self, verb: str, *args: str) -> list[str]:
        """What every stage1 takes (stage1/ABI.md): ``[--debug] VERB POD_DIR ARGS…``."""
        if verb not in ENTRYPOINTS:
            raise ValueError(f"{verb!r} is no stage1 entry point")
        return [*(["--debug"] if self.debug else []), verb, self.pod_dir, *args]

    def command(self, verb: str, *args: str) -> list[str]:
        """The whole command line that runs ``verb`` as a program of its own (the threaded CRI
        server's way, and a third-party stage1's always)."""
        module = BUILT_IN.get(self.stage1)
        program = [sys.executable, "-m", module] if module else shlex.split(self.stage1)
        return [*program, *self.argv(verb, *args)]

    @staticmethod
    def enter_args(app: str | None, command: Sequence[str], how: Entering = NO_OPTIONS) -> list[str]:
        """``enter``'s arguments (stage1/ABI.md)."""
        flags = [f"--app={app}"] if app else []
        flags += [f"--env={e}" for e in how.env]
        flags += [] if how.tty is None else [f"--tty={'yes' if how.tty else 'no'}"]
        flags += [f"--user={how.user}"] if how.user is not None else []
        flags += [f"--workdir={how.workdir}"] if how.workdir else []
        return [*flags, "--", *command]

    # --- the entry points: each stage1's exit status ---

    def call(self, verb: str, *args: str) -> int:
        from stage0.host.executor import dispatch

        return dispatch(self.stage1, verb, self.argv(verb, *args))

    def run(self, *args: str) -> int:
        """``run`` with its ``--detach`` or ``--stdio=…`` (stage0/cli/run.py chose them)."""
        return self.call("run", *args)

    def exec(self) -> int:
        """pod@NAME.service's main process: replaces this process with the pod's."""
        return self.call("exec")

    def stop(self, *, force: bool = False) -> int:
        return self.call("stop", *(["--force"] if force else []))

    def halt(self) -> int:
        return self.call("halt")

    def gc(self) -> int:
        return self.call("gc")

    def sweep(self) -> int:
        """``pod_dir`` is the pods directory here (stage1/orphans.py)."""
        return self.call("sweep")

    def logs(self, *, follow: bool = False, app: str | None = None, window: Sequence[str] = ()) -> int:
        """``window``: ``--tail``, ``--since``, ``--until``, ``--timestamps`` as stage0 parsed them."""
        return self.call(
            "logs", *(["--follow"] if follow else []), *window, *([f"--app={app}"] if app else [])
        )

    def enter(self, app: str | None, command: Sequence[str], how: Entering = NO_OPTIONS) -> int:
        """``command`` in the running app; a built-in stage1 execs its runner, so this returns
        only on an error; another stage1's exit status."""
        return self.call("enter", *self.enter_args(app, command, how))

    def update(self, app: str | None, *values: str) -> int:
        return self.call("update", *([f"--app={app}"] if app else []), *values)

    def app(self, action: str, app: str, *extra: str) -> int:
        """An app sandbox's ``app add|start|stop|rm`` of one app."""
        return self.call("app", action, "--app", app, *extra)

    # --- the nspawn flavor's in-process paths (an app sandbox's, the pool's, the CRI's exec) ---

    def _nspawn(self, what: str) -> None:
        if self.stage1:
            from stage0.errors import FailedPreconditionError

            raise FailedPreconditionError(
                f"{what} is the nspawn flavor's, and pod {self.pod_dir} runs on stage1 {self.flavor}",
                hint="use a pod of the default flavor (--stage1=nspawn)",
            )

    def enter_command(
        self, app: str, cmd: list[str], *, tty: bool, term: str, unit: str
    ) -> tuple[list[str], str]:
        """The argv that runs ``cmd`` in the app as transient ``unit`` of the pod's systemd, and
        the pod's machine name: spawned by the caller (the CRI's exec), not exec'd here."""
        self._nspawn("an exec's command line")
        from stage0.host.executor import enter_command

        return enter_command(self.pod_dir, app, cmd, tty=tty, term=term, unit=unit)

    def app_states(self, app: str | None, *, recorded: bool = False) -> list[dict[str, object]]:
        self._nspawn("an app sandbox")
        from stage0.host.executor import app_states

        return app_states(self.pod_dir, app, recorded=recorded)

    def join_app(self, name: str, *, attached: bool) -> None:
        self._nspawn("a pooled run")
        from stage0.host.executor import join_app

        join_app(self.pod_dir, name, attached=attached)

    def start_app(self, name: str, stopping: threading.Event | None) -> int:
        self._nspawn("a pooled run")
        from stage0.host.executor import start_app

        return start_app(self.pod_dir, name, stopping)

    def start_in_place(self, name: str, err_fd: int) -> int:
        self._nspawn("a pooled app start")
        from stage0.host.executor import start_in_place

        return start_in_place(self.pod_dir, name, err_fd)

    def relay(self, app: str, fields: dict[str, str], out: BinaryIO, err: BinaryIO) -> Any:
        self._nspawn("a pooled run's relay")
        from stage0.host.executor import relay

        return relay(self.pod_dir, app, fields, out, err)

    def warm(self, machine: str) -> None:
        """Connect once to the pod's bus, so its dbus-daemon starts before a run needs it."""
        self._nspawn("a spare")
        from stage0.host.executor import warm

        warm(machine)
