"""How stage0 runs stage1: the one module of stage0 that reaches past ``stage1.abi``.

Every entry point is called with the argv ``python -m stage1`` takes (``[--debug] VERB POD_DIR
ARGS…``, documented in ``stage1/ABI.md``). The built-in stage1 runs in this process (one
interpreter start less, ~45 ms a pod); ``--stage1=COMMAND`` (or ``$NSPOD_STAGE1``) runs another
one as a program instead, as rkt swapped stage1 images. ``exec`` replaces this process either way:
``pod@NAME.service``'s main process must become the pod's nspawn.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, BinaryIO

from stage1.abi import ENTRYPOINTS, Error, PodPaths

if TYPE_CHECKING:
    from stage0.options import GlobalOptions


# stage1's verbs a threaded server (the CRI's) still runs in its own process: plain functions that
# fork nothing, touch no signal and print only their errors (a stage1 program per call cost ~250 ms
# of each container's create, start, stop and removal, bench/cri.py). The others fork (a pod's
# heir) or expect a process of their own: such a server runs them as a program.
THREAD_SAFE = frozenset({"app"})
THREADED = threading.Event()  # set by a server whose calls come from many threads (stage0/cri/server.py)


def call_stage1(options: GlobalOptions, verb: str, pod_dir: str, *args: str) -> int:
    """Run stage1's ``verb`` on ``pod_dir`` (the stage1 of ``options``); its exit status is the
    caller's to pass on. The caller holds no store or pod lock by then."""
    assert verb in ENTRYPOINTS, verb
    argv = [*(["--debug"] if options.debug else []), verb, pod_dir, *args]
    from stage0.pods.flavor import Flavor, recorded

    # the stage1 that prepared the pod, whatever this invocation's --stage1 (issue #25)
    stage1 = recorded(pod_dir)
    if stage1 is None:  # no pod (sweep's pods directory): the invocation's; fly has no sweep of its own
        stage1 = "" if options.stage1 == Flavor.FLY else options.stage1
    modules: dict[str, str] = {Flavor.FLY: "stage1.fly.pod", Flavor.KVM: "stage1.kvm.pod"}
    module = modules.get(stage1, "stage1")
    if stage1 in ("", Flavor.FLY, Flavor.KVM) and THREADED.is_set() and verb not in THREAD_SAFE:
        stage1 = shlex.join([sys.executable, "-m", module])
    sys.stdout.flush()  # what stage0 printed comes first (stage1 may exec another program)
    sys.stderr.flush()
    if stage1 == Flavor.FLY:
        from stage1.fly.pod import main as fly

        return fly(argv)
    if stage1 == Flavor.KVM:
        from stage1.kvm.pod import main as kvm

        return kvm(argv)
    if not stage1:
        from stage1.__main__ import main  # only the verbs that reach stage1 load its executor

        return main(argv)
    from stage0.errors import FailedPreconditionError
    from stage0.host.runner import ProgramMissing, run

    command = [*shlex.split(stage1), *argv]
    try:
        if verb == "exec":
            os.execvp(command[0], command)
        return run(command, check=False, capture=False).returncode
    except (OSError, ProgramMissing) as error:
        reason = error.strerror if isinstance(error, OSError) else "not found"
        raise FailedPreconditionError(
            f"cannot run stage1 {command[0]!r}: {reason}",
            hint="check --stage1 (or $NSPOD_STAGE1), or unset it for the built-in stage1",
        ) from None


def unit_state(unit: str) -> tuple[str, int]:
    """(ActiveState, MainPID) of a host unit, from the D-Bus adapter; ("", 0) when systemd cannot
    say (not loaded, or not the init system)."""
    from stage1.systemd import Systemd

    try:
        with Systemd() as systemd:
            status = systemd.status(unit)
    except Error:
        return "", 0
    return status.active_state, status.main_pid


def machine_leader(name: str) -> int:
    """The host PID of a registered machine's leader (a pod's systemd: its namespaces are the
    pod's); raises when machined does not know the machine."""
    from stage1.systemd import Systemd

    with Systemd() as systemd:
        return systemd.machine_leader(name)


def machine_registered(name: str) -> bool:
    """Whether systemd-machined has a machine of that name now (False when it cannot say)."""
    from stage1.systemd import Systemd

    try:
        with Systemd() as systemd:
            systemd.machine_leader(name)
    except Error:
        return False
    return True


def app_states(pod_dir: str, app: str | None, *, recorded: bool = False) -> list[dict[str, object]]:
    """The states of an app sandbox's apps (every app, or ``app``), from the built-in stage1
    (``recorded``: from its records alone, stage1.apps.states)."""
    from stage1.apps import states

    return states(pod_dir, app, recorded=recorded)


def enter_command(
    pod_dir: str, app: str, cmd: list[str], *, tty: bool, term: str, unit: str
) -> tuple[list[str], str]:
    """stage1's enter path (what ``nspod enter --app`` execs): the argv that runs ``cmd`` in the
    app's confinement as transient ``unit`` of the pod's systemd, and the pod's machine name. The
    CRI's exec spawns it instead."""
    from stage1.run import enter_command as command

    return command(pod_dir, app, cmd, tty=tty, term=term, unit=unit)


def fly_unit(uuid: str, app: str) -> str:
    """The host unit an app of a hostPID sandbox runs as (stage1/fly), for its cgroup's stats."""
    from stage1.fly.plan import host_unit

    return host_unit(uuid, app)


def pidns_helper_built() -> bool:
    """Whether nspod-pidns, which gives an app a PID namespace of its own, is built here."""
    from stage1.pidns import BUILT

    return os.path.exists(BUILT)


def kill_unit(machine: str, unit: str) -> bool:
    """SIGKILL every process of ``unit`` in the pod's systemd; False when there was no such unit
    (gone already, or not started yet), which is no error."""
    from stage1.systemd import Systemd

    try:
        with Systemd(machine) as pod:
            pod.kill(unit, signal.SIGKILL)
    except Error:
        return False
    return True


def join_app(pod_dir: str, name: str, *, attached: bool) -> None:
    """A pooled run's app into its claimed pod (stage1/apps.py join), never loaded there before;
    ``attached``: its output relayed (a foreground run), else the journal's."""
    from stage1.apps import join
    from stage1.run import load
    from stage1.stdio import Stdio

    spec, paths = load(pod_dir)
    join(spec, paths, name, stdio=Stdio.ATTACHED if attached else Stdio.JOURNAL, fresh=True)


def start_app(pod_dir: str, name: str, stopping: threading.Event | None) -> int:
    """Start a joined app; with ``stopping`` wait for its end and give its exit code (130 once
    ``stopping`` is set), without, 0 once it started."""
    from stage1.apps import run_app
    from stage1.run import load

    spec, paths = load(pod_dir)
    return run_app(spec, paths, name, stopping)


def start_in_place(pod_dir: str, name: str, err_fd: int) -> int:
    """``nspod app start`` served by a long-lived process (the pool keeper): stage1's start of an
    added app in this process, its error written to ``err_fd`` as stage1's own command prints it."""
    from stage1 import apps
    from stage1.abi import ExitCode

    try:
        return apps.start(pod_dir, name)
    except Error as error:
        os.write(err_fd, f"nspod: {error.diagnostics()}\n".encode())
        return int(ExitCode.FAILURE)


def relay(pod_dir: str, app: str, fields: dict[str, str], out: BinaryIO, err: BinaryIO) -> Any:
    """A foreground run's output relay (stage1/attach.py), listening before the app starts."""
    from stage1.attach import Relay

    return Relay(PodPaths(pod_dir).io, [app], fields, out=out, err=err)


def warm(machine: str) -> None:
    """Connect once to a pod's bus: its dbus-daemon starts now, not when a run needs it."""
    from stage1.systemd import Systemd

    with Systemd(machine):
        pass


def daemon_reload() -> None:
    """Make systemd read unit files and drop-ins again (where systemd is the init system)."""
    if not os.path.isdir("/run/systemd/system"):
        return
    from stage1.systemd import Systemd

    with Systemd() as systemd:
        systemd.reload()


def systemd_version() -> str:
    """The host systemd's version (``252``), with a note when it is not the running init."""
    from stage1.tree import host_systemd_version

    try:
        version = str(host_systemd_version())
    except Error:
        return "not found"
    return version if os.path.isdir("/run/systemd/system") else f"{version}, not running as init"


def unit_watch(unit: str) -> tuple[str, str, str, str, str]:
    """(ActiveState, SubState, StatusText, Result, InvocationID) of a host service, for watching a
    restart (stage0/api/autoupdate.py); empty strings when systemd cannot say (not loaded). While a
    job is queued for it, ActiveState is "pending" (between a restart's stop and start it is
    inactive, with the new run's InvocationID already)."""
    from stage1.systemd import Systemd

    try:
        with Systemd() as systemd:
            status = systemd.status(unit)
            text = systemd.status_text(unit)
    except Error:
        return "", "", "", "", ""
    active = "pending" if status.job_queued else status.active_state
    return active, status.sub_state, text, status.result, status.invocation_id


def restart_unit(unit: str) -> None:
    """Queue a restart of a host unit (raises when systemd refuses it). Its start rate limit is reset
    first, as ``systemctl reset-failed`` does: a restart asked for (auto-update's, a rollback's) is
    no crash loop, and the sixth in ten seconds would be refused (start-limit-hit)."""
    from stage1.systemd import Systemd

    with Systemd() as systemd:
        with contextlib.suppress(Error):  # nothing failed to reset: systemd says so
            systemd.reset_failed(unit)
        systemd.restart_unit(unit)


def apps_active(machine: str, apps: list[str]) -> list[str]:
    """The ActiveState of each app's unit in a running pod (its systemd, over the machine's bus); ""
    for one it cannot say (not started yet, or the pod's bus not up)."""
    from stage1.systemd import Systemd

    states = []
    try:
        with Systemd(machine) as pod:
            for app in apps:
                try:
                    states.append(pod.status(f"{app}.service").active_state)
                except Error:
                    states.append("")
    except Error:
        return [""] * len(apps)
    return states


def signal_unit(machine: str | None, unit: str, signum: int) -> bool:
    """Send ``signum`` to every process of ``unit`` (KillUnit): one of the pod's systemd, or
    with no ``machine`` the host's; False when there is no such unit (not running)."""
    from stage1.systemd import Systemd

    try:
        with Systemd(machine) as systemd:
            if not systemd.exists(unit) or systemd.status(unit).active_state not in ("active", "reloading"):
                return False
            systemd.kill(unit, signum)
    except Error:
        return False
    return True


def restart_host_unit(unit: str, timeout: float = 120.0) -> str:
    """``systemctl restart UNIT`` of a host unit (pod@NAME.service): stopped, then started again;
    its ActiveState once the start job ended. Asked for, so never a crash loop: the unit's start
    rate limit is reset first, as ``systemctl reset-failed`` does (see :func:`restart_unit`)."""
    from stage1.systemd import Systemd

    with Systemd() as systemd:
        with contextlib.suppress(Error):
            systemd.reset_failed(unit)
        systemd.stop(unit, timeout=timeout)
        return systemd.start_unit(unit, timeout=timeout).active_state
