"""``enter``'s command line: what runs a command in a running pod's app, in the app's confinement
(stage1/enter.py builds the argv), with ``nspod exec``'s overrides (stage1/nspawn/exec_as.py) or
none. ``enter`` execs it; the CRI's exec spawns it (stage0/cri/exec.py)."""

from __future__ import annotations

import os

from stage1 import hostapps, mds
from stage1.abi import Error
from stage1.enter import app_main_pid, check_command, enter_argv
from stage1.nspawn.exec_as import Overrides, admit, applied
from stage1.pidns import BUILT, HELPER_IN_POD, own_directory, own_pid
from stage1.poddir import host_hidden, load
from stage1.systemd import Systemd
from stage1.tree import write_programs

NONE = Overrides()


def enter_command(
    pod_dir: str,
    app: str | None,
    command: list[str],
    *,
    tty: bool,
    term: str,
    unit: str = "",
    overrides: Overrides = NONE,
) -> tuple[list[str], str]:
    """The command line that runs ``command`` in the running pod's app (``overrides`` applied), and
    the pod's machine name ("" for a hostPID sandbox's app, a host unit); ``unit``: the transient
    unit's name, to stop it by."""
    spec, paths = load(pod_dir)
    spec = mds.registered_url(spec, paths)
    name = spec.chosen(app).name
    try:
        with Systemd() as systemd:
            leader = systemd.machine_leader(spec.machine)  # machined knows the pod: it runs
    except Error:
        raise Error(
            f"pod {spec.uuid} is not running", hint="start it first; 'nspod status' tells its state"
        ) from None
    chosen = spec.app(name)
    if overrides != NONE:
        spec, chosen = applied(spec, name, overrides)
        if overrides.user is not None:
            admit(paths.stage1, chosen.user, chosen.group)
        if own_directory(chosen) and not os.path.exists(
            os.path.join(paths.stage1, HELPER_IN_POD.lstrip("/"))
        ):
            write_programs(paths.stage1, {HELPER_IN_POD.lstrip("/"): BUILT})  # it enters -w as the app
    check_command(paths, chosen, (command or ["/bin/sh"])[0])
    hidden = host_hidden()
    if spec.host_pid:  # a host unit in the host's PID namespace (stage1/hostapps.py)
        return hostapps.enter_argv(spec, paths, chosen, command, hidden, tty=tty, term=term, unit=unit), ""
    # a privileged app's command joins its mount namespace, an app's of its own PID namespace that
    main = app_main_pid(spec.machine, name) if chosen.privileged or own_pid(chosen) else 0
    argv = enter_argv(
        spec, name, command, tty=tty, hidden=hidden, leader=leader, term=term, unit=unit, main=main
    )
    return argv, spec.machine
