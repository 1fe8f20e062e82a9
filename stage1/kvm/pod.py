"""stage1's entry points for a kvm pod (``--stage1=kvm``, issue #25): ``python -m stage1.kvm.pod
VERB POD_DIR …`` as stage1/__main__.py takes them (stage1/ABI.md); stage0 calls :func:`main`.

``run`` starts the pod's host unit (``nspod-NAME.service``; pod@NAME.service runs ``exec``
itself), whose main process runs QEMU and ends with the pod's code (stage1/kvm/vm.py). The apps'
statuses are written by the guest's reapers into the pod's status directory (shared with the
guest), the pod's exit code comes over the control port (stage1/kvm/guest.py). A stop presses
Ctrl-Alt-Del through QMP: the guest powers off in order; after a bounded wait the unit is stopped
(QEMU killed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import time

from stage1 import network
from stage1.abi import Error, ExitCode, PodPaths, PodSpec, unit_name
from stage1.cni import down_path
from stage1.enter import split_command
from stage1.journal import Follower
from stage1.kvm import assets, vm
from stage1.poddir import load
from stage1.systemd import Systemd, UnitNotFound
from stage1.transient import ExecCommand, ServiceType, TransientService

YEAR = 365 * 24 * 3600.0
POWEROFF_WAIT = 60.0  # a guest's orderly end under TCG takes seconds; then QEMU is stopped
KEYS = ("ctrl", "alt", "delete")


def pod_service(spec: PodSpec, pod_dir: str, python: str, *, debug: bool = False) -> TransientService:
    """The pod's unit for ``nspod run``: its main process runs QEMU (READY=1 once it started) and
    ends with the pod's exit code."""
    return TransientService(
        name=unit_name(spec.machine),
        exec_start=(
            ExecCommand.of(
                python,
                "-m",
                "stage1.kvm.pod",
                *(["--debug"] if debug else []),
                "exec",
                os.path.abspath(pod_dir),
            ),
        ),
        # systemctl stop of the unit powers the guest off in order, as nspod stop does
        exec_stop=(ExecCommand.of(python, "-m", "stage1.kvm.pod", "halt", os.path.abspath(pod_dir)),),
        description=f"nspod kvm pod {spec.machine}",
        type=ServiceType.NOTIFY,
        notify_access="main",
        slice="machine.slice",
        log_extra_fields=(("POD_UUID", spec.uuid),),
        # the assets of this invocation's (a test's own), where it names them
        environment=tuple((k, v) for k, v in os.environ.items() if k == assets.ENV),
        # the pod's network torn down however QEMU ends, kill -9 included (stage1/cni.py down_script)
        exec_stop_post=(ExecCommand("/bin/sh", ("/bin/sh", down_path(spec.uuid)), ignore_failure=True),),
    )


def run(pod_dir: str, *, detach: bool, debug: bool = False) -> int:
    spec, paths = load(pod_dir)
    service = pod_service(spec, pod_dir, sys.executable, debug=debug)
    with open(paths.unit, "w") as file:
        file.write(service.name + "\n")
    follower = None if detach else Follower("POD_UUID", spec.uuid, relayed=False)
    with Systemd() as host:
        host.start(service)
        try:
            status = host.wait(service.name, until="active" if detach else "finished", timeout=YEAR)
        except KeyboardInterrupt:
            stop(pod_dir, force=False)
            return 130
        if follower is not None:
            follower.finish(service.name)
        host.unref(service.name)
        if detach and status.active_state == "active":
            return 0
        if status.active_state == "failed":
            with contextlib.suppress(Error):
                host.reset_failed(service.name)
        if status.how != "exited":
            return 128 + status.exec_main_status
        code = vm.pod_code(paths, spec)
        if status.exec_main_status not in (0, code):
            # the set-up before QEMU (or QEMU) failed: nspod's own failure, not an app's
            return int(ExitCode.FAILURE)
        return code


def press_stop(spec: PodSpec) -> bool:
    """Ctrl-Alt-Del to the guest through QEMU's monitor; False when no QEMU listens."""
    keys = [{"type": "qcode", "data": key} for key in KEYS]
    commands = [{"execute": "qmp_capabilities"}, {"execute": "send-key", "arguments": {"keys": keys}}]
    path = os.path.join(vm.run_dir(spec), "qmp.sock")
    with contextlib.suppress(OSError):  # the unit's main process ends with 0, as for a stop
        open(os.path.join(vm.run_dir(spec), vm.STOPPING), "w").close()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5.0)
            sock.connect(path)
            reader = sock.makefile("r")
            reader.readline()  # the greeting
            for command in commands:
                sock.sendall(json.dumps(command).encode() + b"\n")
                while "return" not in (answer := json.loads(reader.readline() or "{}")) and answer:
                    if "error" in answer:
                        return False
    except (OSError, ValueError):
        return False
    return True


def _unit(paths: PodPaths) -> str | None:
    try:
        with open(paths.unit) as file:
            return file.read().strip()
    except FileNotFoundError:
        return None


def _wait_end(host: Systemd, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with contextlib.suppress(UnitNotFound):
        while host.status(name).main_pid and time.monotonic() < deadline:
            time.sleep(0.1)


def halt(pod_dir: str) -> int:
    """pod@'s ExecStop: the guest powers off (bounded); systemd's SIGTERM then ends what is left."""
    spec, paths = load(pod_dir)
    name = _unit(paths)
    if name and press_stop(spec):
        with Systemd() as host:
            _wait_end(host, name, POWEROFF_WAIT)
    return 0


def stop(pod_dir: str, *, force: bool) -> int:
    spec, paths = load(pod_dir)
    name = _unit(paths)
    if name is None:
        return 0  # never started
    with Systemd() as host, contextlib.suppress(UnitNotFound):
        if force:
            host.kill(name, signal.SIGKILL)
        elif press_stop(spec):
            _wait_end(host, name, POWEROFF_WAIT)
        if host.exists(name) and host.status(name).active_state not in ("inactive", "failed"):
            host.stop(name, timeout=POWEROFF_WAIT)
        if host.exists(name) and host.status(name).active_state == "failed":
            host.reset_failed(name)
    return 0


def gc(pod_dir: str) -> int:
    """What a killed VM left: its run directory, a failed unit. Its mounts were its own mount
    namespace's and virtiofsd was its unit's (both gone with the unit)."""
    spec, paths = load(pod_dir)
    shutil.rmtree(vm.run_dir(spec), ignore_errors=True)
    with contextlib.suppress(OSError, Error):  # its network, if its unit could not take it down
        network.down(spec.uuid)
    name = _unit(paths)
    if name:
        with Systemd() as host, contextlib.suppress(Error):
            if host.exists(name) and host.status(name).active_state == "failed":
                host.reset_failed(name)
    return 0


def logs(pod_dir: str, *, follow: bool) -> int:
    spec, _ = load(pod_dir)
    follower = Follower("POD_UUID", spec.uuid)
    if follow:
        follower.wait()
    else:
        follower.finish(None)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nspod-stage1-kvm", description="nspod's kvm stage1")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("verb")
    parser.add_argument("pod_dir")
    parser.add_argument("--detach", action="store_true")
    parser.add_argument("--stdio")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--follow", action="store_true")
    parser.add_argument("--app")
    options, _command = split_command(sys.argv[1:] if argv is None else argv)
    args, _more = parser.parse_known_args(options)
    try:
        match args.verb:
            case "run":
                return run(args.pod_dir, detach=args.detach, debug=args.debug)
            case "exec":  # pod@NAME's main process, or the unit run starts
                spec, paths = load(args.pod_dir)
                return vm.exec_vm(spec, paths, debug=args.debug)
            case "stop":
                return stop(args.pod_dir, force=args.force)
            case "halt":
                return halt(args.pod_dir)
            case "gc":
                return gc(args.pod_dir)
            case "logs" if not args.app:
                return logs(args.pod_dir, follow=args.follow)
            case "sweep":
                from stage1 import orphans

                orphans.sweep(args.pod_dir)
                return 0
            case _:
                raise Error(
                    f"{args.verb} is not built for kvm pods yet",
                    hint="see the VM with machinectl and its console with journalctl -u",
                )
    except Error as error:
        print(f"nspod: {error.diagnostics()}", file=sys.stderr)
        return int(ExitCode.FAILURE)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
