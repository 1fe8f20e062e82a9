"""A kvm pod's start on the host (effects; the plans are stage1/kvm/qemu.py's and guest.py's).

The pod's unit runs ``exec``: it writes the guest's tree, enters a mount namespace of its own
(nothing it mounts reaches the host, and everything it mounts goes with the unit's last process:
a ``kill -9`` of QEMU leaves no mount behind), binds the host's /usr and the pod's status
directory into the tree and mounts each app's root where an nspawn pod has it, starts virtiofsd
on that tree, starts QEMU (machined's leader of the machine), says READY=1 and waits for it: the
unit's main process ends with the pod's exit code (the guest's report, else its apps' statuses),
so ``pod@NAME``'s ExecMainStatus is the first failing app's, as an nspawn pod's is nspawn's. A
stop asked for (``nspod stop``, ``systemctl stop``: STOPPING beside the QMP socket, or SIGTERM)
ends it with 0, as nspawn's orderly poweroff does.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import json
import os
import shutil
import signal
import socket
import time

from stage1.abi import APP_ROOT, Error, PodPaths, PodSpec, own_unit
from stage1.app_unit import POD_ETC, STATUS_DIR, described, pod_etc
from stage1.atomic import write_atomic
from stage1.kvm import assets, guest, host, net, qemu
from stage1.poddir import make_volume
from stage1.tree import host_systemd_version, write_files, write_tree
from stage1.volumes import staged

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT = 1, 2, 4, 32
MS_BIND, MS_REC, MS_SLAVE = 4096, 16384, 1 << 19
RUN_DIR = "/run/nspod/kvm"  # per pod: virtiofsd's socket (a socket path has 107 bytes at most)


def run_dir(spec: PodSpec) -> str:
    return os.path.join(RUN_DIR, spec.uuid)


def ctl_path(paths: PodPaths) -> str:
    return os.path.join(paths.root, "kvm-ctl")


def plan(
    spec: PodSpec, paths: PodPaths, accel: qemu.Accel, host_cpus: int, *, debug: bool = False
) -> qemu.VmPlan:
    where = assets.assets_dir()
    memory = [a.memory_max for a in spec.apps if a.memory_max]
    cpu = [a.cpu_quota for a in spec.apps if a.cpu_quota]
    return qemu.VmPlan(
        name=spec.machine,
        uuid=spec.uuid,
        kernel=os.path.join(where, assets.KERNEL),
        initrd=os.path.join(where, assets.INITRD),
        memory=qemu.vm_memory(sum(memory) if memory else None),
        cpus=qemu.vm_cpus(sum(cpu) if cpu else None, host_cpus),
        accel=accel,
        vfs_socket=os.path.join(run_dir(spec), "vfs.sock"),
        qmp_socket=os.path.join(run_dir(spec), "qmp.sock"),
        ctl_path=ctl_path(paths),
        root=paths.stage1,
        tag=assets.ROOT_TAG,
        cmdline=guest.kernel_cmdline(spec, debug=debug),
    )


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if _libc.mount(source.encode(), target.encode(), (fstype or "").encode() or None, flags,
                   data.encode() if data else None) != 0:  # fmt: skip
        raise Error(f"cannot mount {source} on {target}: {os.strerror(ctypes.get_errno())}")


def prepare(spec: PodSpec, paths: PodPaths) -> None:
    """The guest's tree, the pod's records and directories (idempotent)."""
    os.makedirs(os.path.dirname(paths.stage1), mode=0o700, exist_ok=True)
    write_tree(paths.stage1, guest.guest_tree(spec, systemd_version=host_systemd_version()))
    profiles = {app.name: described(app, guest.GUEST_HIDDEN) for app in spec.apps}
    write_atomic(paths.profile, json.dumps(profiles, indent=2, sort_keys=True), sync=False)
    os.makedirs(paths.status, exist_ok=True)
    etc = os.path.join(paths.stage1, POD_ETC.lstrip("/"))
    os.makedirs(etc, exist_ok=True)
    for name in pod_etc(spec):  # what the spec gives none of is the host's, as nspawn binds it
        if not os.path.exists(os.path.join(etc, name)) and os.path.exists(f"/etc/{name}"):
            shutil.copyfile(f"/etc/{name}", os.path.join(etc, name))
    for app in spec.apps:
        for directory in (paths.upper(app.name), os.path.join(paths.layers(app.name), "work")):
            os.makedirs(directory, exist_ok=True)
    open(paths.lock, "a").close()


def mount_tree(spec: PodSpec, paths: PodPaths) -> None:
    """In a mount namespace of this process's own: the host's /usr read-only, the status
    directory, each app's root (an overlay of its image under its writable layer)."""
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise Error(f"cannot make a mount namespace: {os.strerror(ctypes.get_errno())}")
    _mount("none", "/", None, MS_REC | MS_SLAVE)  # nothing mounted here propagates to the host
    usr = os.path.join(paths.stage1, "usr")
    _mount("/usr", usr, None, MS_BIND | MS_REC)
    _mount("none", usr, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    # the guest's systemctl: the wrapper that turns "exit N" into a report and a power-off
    real, wrapper = (
        os.path.join(paths.stage1, p.lstrip("/")) for p in (guest.REAL_SYSTEMCTL, guest.SYSTEMCTL_WRAPPER)
    )
    _mount("/usr/bin/systemctl", real, None, MS_BIND)
    _mount(wrapper, os.path.join(usr, "bin/systemctl"), None, MS_BIND)
    _mount(paths.status, os.path.join(paths.stage1, STATUS_DIR.lstrip("/")), None, MS_BIND)
    mount_volumes(spec, paths)
    for app in spec.apps:
        where = os.path.join(paths.stage1, APP_ROOT.format(app=app.name).lstrip("/"))
        os.makedirs(where, exist_ok=True)
        lower = ":".join((app.rootfs, *app.lower))
        work = os.path.join(paths.layers(app.name), "work")
        # what the guest writes there is no set-user-ID program nor device on the host's side (the
        # guest's own mount decides for the guest)
        _mount(
            "overlay",
            where,
            "overlay",
            MS_NOSUID | MS_NODEV,
            f"lowerdir={lower},upperdir={paths.upper(app.name)},workdir={work}",
        )


def mount_volumes(spec: PodSpec, paths: PodPaths) -> None:
    """Each app's volumes bound where an nspawn pod's nspawn binds them (stage1/nspawn.py
    volume_binds): in the tree, never in an app's root; the guest's volumes unit takes them on
    from there, as an nspawn pod's does (stage1/volumes.py)."""
    for volume in spec.volumes:
        make_volume(paths, volume)
    for app in spec.apps:
        for index, (name, _, read_only) in enumerate(app.mounts):
            volume = next(v for v in spec.volumes if v.name == name)
            source = volume.source if volume.kind == "host" else paths.volume(name)
            target = os.path.join(paths.stage1, staged(app.name, index).lstrip("/"))
            os.makedirs(target, exist_ok=True)
            _mount(source, target, None, MS_BIND | MS_REC)
            if read_only or volume.read_only:
                _mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def notify(message: str) -> None:
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address:
        address = "\0" + address[1:] if address.startswith("@") else address
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)


STOPPING = "stopping"  # in the pod's run directory: a stop was asked for


def exec_vm(spec: PodSpec, paths: PodPaths, *, debug: bool = False) -> int:
    """The pod's unit's main process: set everything up, run QEMU, return the pod's exit code."""
    where = assets.assets_dir()
    for name in (assets.KERNEL, assets.INITRD):
        if not os.path.exists(os.path.join(where, name)):
            raise Error(f"the kvm flavor's {name} is missing in {where}",
                        hint="run 'python3 -m stage1.kvm.assets' (make install does)")  # fmt: skip
    open(paths.lock, "a").close()  # stage0 made it; a pod prepared by an older one may lack it
    lock = os.open(paths.lock, os.O_RDONLY)
    fcntl.flock(lock, fcntl.LOCK_EX)  # held by QEMU (inherited) while the pod runs
    os.set_inheritable(lock, True)
    # the pod's network, as any pod's (stage1/kvm/net.py): before the tree (its DNS, its metadata
    # URL) and before the mount namespace (the host and CNI must see the network namespace)
    spec, links = net.join(spec, paths, own_unit())
    prepare(spec, paths)
    write_files(paths.stage1, net.guest_files(spec, links))
    with open(paths.unit, "w") as file:
        file.write(own_unit() + "\n")
    with open(paths.started, "w") as file:
        file.write(f"{time.time()}\n")
    accel = qemu.host_accel()
    vm = dataclasses.replace(
        plan(spec, paths, accel, os.cpu_count() or 1, debug=debug), nics=net.nics(links)
    )
    if accel is qemu.Accel.TCG:
        print(
            "nspod: no hardware virtualization here (no vmx/svm): the VM runs under TCG, slowly", flush=True
        )
    open(vm.ctl_path, "w").close()
    mount_tree(spec, paths)
    host.start_virtiofsd(qemu.virtiofsd_argv(vm), vm.vfs_socket)
    argv = qemu.qemu_argv(vm)
    waited = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)  # (blocked: never lost, never ignored)
    pid = os.fork()
    if pid == 0:  # QEMU: the signals as they were, in the pod's network namespace
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, waited)
            net.enter_namespace(spec)  # QEMU opens the taps there, and reaches nothing else
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    host.register(spec, pid)
    notify("READY=1")
    return _supervise(spec, paths, pid)


def _supervise(spec: PodSpec, paths: PodPaths, pid: int) -> int:
    """Wait for QEMU; a SIGTERM (systemd's stop after ExecStop=) is passed on to it. The pod's
    exit code once it ended: 0 for a stop asked for, 128+N for QEMU killed by signal N, else what
    the guest said (pod.pod_code)."""
    stopped = False
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM, signal.SIGINT, signal.SIGCHLD})
        if info.si_signo != signal.SIGCHLD:
            stopped = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            continue
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            break
    if stopped or os.path.exists(os.path.join(run_dir(spec), STOPPING)):
        return 0
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return pod_code(paths, spec)


CTL_TAIL = 4096  # what of the control port the host reads: its last reports


def pod_code(paths: PodPaths, spec: PodSpec) -> int:
    """The pod's exit code: what the guest said at its end, else the first failing app's status
    recorded (a VM killed before its end)."""
    from stage1.kvm.guest import exit_code, is_code

    with contextlib.suppress(FileNotFoundError), open(ctl_path(paths), "rb") as file:
        # the guest writes what it likes there (its kernel is the boundary): the tail alone, where
        # the last report is, read as bytes (no UTF-8 need be there)
        start = max(0, os.fstat(file.fileno()).st_size - CTL_TAIL)
        file.seek(start)
        tail = file.read(CTL_TAIL)  # (a line the seek cut is no report: dropped)
        said = exit_code((tail.split(b"\n", 1)[-1] if start else tail).decode("ascii", "replace"))
        if said is not None:
            return said
    codes = []
    for app in spec.apps:  # (the guest's files too: a code's few ASCII digits, or none)
        with contextlib.suppress(FileNotFoundError), open(os.path.join(paths.status, app.name), "rb") as f:
            word = f.read(16).strip().decode("ascii", "replace")
            codes.extend([int(word)] if is_code(word) else [])
    return next((c for c in codes if c), 0)
