"""The warm pool: booted, empty app sandboxes kept ready, and the keeper that runs pods in them.

``nspod pool keep`` (nspod-pool.service) keeps ``size`` spares booted (``[pool] size`` in
nspod.conf, or ``--size``) and listens on /run/nspod/pool.sock. ``nspod run`` hands it its
command line first (stage0/pool_client.py); the keeper, with every module loaded, parses it with
the real parser and takes it only when a spare can serve it as a cold start would (one image,
already in the store, the default network, no name, volumes, ports, DNS or terminal options:
:func:`cold_reason` says which). Then it claims a spare, plans the app with the planner every pod
goes through, mounts it in, relays its output to the caller's own stdout and stderr (passed
over the socket) and answers with its exit code. The claimed pod is a pod like any other from
then on: its app's end ends it, and it is never a spare again. A spare being made carries
``pool.filling`` (flocked by its maker); one ready carries ``pool.ready``, renamed to
``pool.taken`` by the one run that claims it (rename: exactly one wins). A spare whose maker
died half-way is stopped by the next keeper, ``nspod pool drain`` and ``nspod gc``; a keeper
stopped (SIGTERM) finishes the spare it is making first.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
import tomllib
from typing import Any

from stage0.errors import Error, UsageError
from stage0.options import GlobalOptions
from stage0.pods import Pod, Pods, PodState
from stage0.store.locks import lock_held

FILLING, READY, TAKEN = "pool.filling", "pool.ready", "pool.taken"
BOOT_TIMEOUT = 120.0  # how long a drain waits for a spare being made to be ready (or its maker to die)
# pod options a spare cannot honour: it was booted with the defaults (run these cold)
COLD_OPTIONS = ("pod_name", "hostname", "volume", "mount", "private_users", "pod_manifest", "save_as",
                "port", "rm", "interactive", "tty", "inherit_env", "set_env_file", "uuid_file_save",
                "dns", "dns_search", "dns_opt", "dns_domain", "hosts_entry")  # fmt: skip


class Cold(Exception):
    """The pool cannot take this run; ``nspod run`` starts it cold."""


def pool_size(options: GlobalOptions) -> int:
    """``[pool] size`` of nspod.conf (the local configuration over the system's), else 0."""
    size = 0
    for directory in (options.system_config, options.local_config):
        try:
            with open(os.path.join(directory, "nspod.conf"), "rb") as file:
                size = int(tomllib.load(file).get("pool", {}).get("size", size))
        except FileNotFoundError:
            continue
        except (tomllib.TOMLDecodeError, ValueError, TypeError) as error:
            raise Error(f"{directory}/nspod.conf: {error}", hint="[pool] size = N (spare pods)") from None
    return size


def half_made(pod: Pod) -> bool:
    """A spare whose maker died before it was ready (``nspod gc`` stops it)."""
    marker = os.path.join(pod.path, FILLING)
    return os.path.exists(marker) and not lock_held(marker)


def stop_half_made(options: GlobalOptions, pods: Pods) -> list[str]:
    """Stop the running spares whose maker died half-way (a keeper killed or stopped while a spare
    booted): no pool verb would see them, and a keeper would make others beside them."""
    from stage0.executor import call_stage1

    stopped = []
    for pod in pods.all():
        if pod.state() is PodState.RUNNING and half_made(pod):
            call_stage1(options, "stop", pod.path)
            stopped.append(pod.uuid)
    return stopped


def drain(options: GlobalOptions, pods: Pods) -> list[str]:
    """Stop every spare: the ready ones, those being made (once their maker is done with them)
    and the half-made ones; their UUIDs."""
    from stage0.executor import call_stage1

    for each in pods.all():
        _wait_made(os.path.join(each.path, FILLING))
    stopped = []
    while (pod := claim(pods)) is not None:  # claimed first: no run can take it meanwhile
        call_stage1(options, "stop", pod.path)
        stopped.append(pod.uuid)
    return stopped + stop_half_made(options, pods)


def _wait_made(marker: str) -> None:
    """Until the maker of the spare marked ``marker`` is done: its spare ready, or its maker dead."""
    try:
        fd = os.open(marker, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return
    deadline = time.monotonic() + BOOT_TIMEOUT
    try:
        while time.monotonic() < deadline:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                time.sleep(0.05)
    finally:
        os.close(fd)


def spares(pods: Pods) -> list[Pod]:
    return [
        p
        for p in pods.all()
        if os.path.exists(os.path.join(p.path, READY)) and p.state() is PodState.RUNNING
    ]


def claim(pods: Pods) -> Pod | None:
    for pod in spares(pods):
        try:
            os.rename(os.path.join(pod.path, READY), os.path.join(pod.path, TAKEN))
        except FileNotFoundError:
            continue  # another run took it first
        return pod
    return None


def make_spare(options: GlobalOptions) -> str:
    """Boot one spare (as ``nspod app sandbox`` would) and mark it ready; its UUID."""
    from stage0.cli.run import prepare_request
    from stage0.executor import warm
    from stage0.requests import PodRequest
    from stage0.sandbox import save_settings

    request = PodRequest(apps=(), sandbox=True)
    pod = prepare_request(options, request, to_run=True)
    marker = os.path.join(pod.path, FILLING)
    fd = os.open(marker, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        save_settings(pod.path, request)
        if pod.start(options, "--detach") != 0:
            raise Error(f"spare pod {os.path.basename(pod.path)} did not boot", hint="see its journal")
        warm(f"nspod-{os.path.basename(pod.path)}")
        os.rename(marker, os.path.join(pod.path, READY))
    finally:
        os.close(fd)
    return os.path.basename(pod.path)


def cold_reason(args: argparse.Namespace, options: GlobalOptions, keeper: GlobalOptions) -> str | None:
    """Why a spare cannot serve this ``run`` (None: it can)."""
    if args.verb != "run":
        return "not a run"
    if (
        (options.dir, options.local_config, options.system_config)
        != (keeper.dir, keeper.local_config, keeper.system_config)
        or options.stage1
        or options.debug
    ):
        return "another store, configuration or stage1"
    given = [o for o in COLD_OPTIONS if getattr(args, o, None) not in (None, False, [], (), "")]
    if given:
        return f"--{given[0].replace('_', '-')}"
    if args.net not in (None, [], ["default"]):
        return "--net"
    if args.mds_register is not None:
        return "--mds-register"
    if args.pull_policy == "update":
        return "--pull-policy=update asks the remote"
    return None


class Keeper:
    def __init__(self, options: GlobalOptions, size: int, path: str) -> None:
        self.options, self.size, self.path = options, size, path
        self.pods = Pods(options.dir)
        self.used = threading.Event()
        self.stopping = threading.Event()

    def fill(self) -> None:
        """Keep ``size`` spares; woken when a run takes one (and every few seconds). A spare a
        dead maker left half-made (an earlier keeper's) is stopped first: it counts as none."""
        while not self.stopping.is_set():
            self.used.clear()
            try:
                stop_half_made(self.options, self.pods)
            except Error as error:
                print(f"nspod pool: {error.message}", file=sys.stderr)
            while len(spares(self.pods)) < self.size and not self.stopping.is_set():
                try:
                    make_spare(self.options)
                except Error as error:
                    print(f"nspod pool: {error.message}", file=sys.stderr)
                    break
            self.used.wait(5.0)

    def serve(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o077)  # root's alone: a request runs pods as root
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        listener.listen(64)
        filler = threading.Thread(target=self.fill, daemon=True)
        signal.signal(signal.SIGTERM, lambda signum, frame: self.stopping.set())
        filler.start()
        listener.settimeout(0.2)  # the loop looks at ``stopping`` this often
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
        # SIGTERM (systemctl stop): the spare being made is finished (ready: pool list, drain and
        # the next keeper see it), never left booting half-made; systemd's stop timeout bounds it
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends the keeper at once
        listener.close()
        self.used.set()
        filler.join()

    def handle(self, conn: socket.socket) -> None:
        fds: list[int] = []
        with conn:
            try:
                message, fds = _receive(conn)
                request = json.loads(message)
                code = self.run(request["argv"], fds, conn)
                conn.send(json.dumps({"exit": code}).encode())
            except Cold as why:
                with contextlib.suppress(OSError):
                    conn.send(json.dumps({"cold": str(why)}).encode())
            except Error as error:
                with contextlib.suppress(OSError):
                    os.write(fds[2], f"nspod: {error.diagnostics()}\n".encode())
                    conn.send(json.dumps({"exit": 2 if isinstance(error, UsageError) else 254}).encode())
            except (OSError, ValueError, KeyError, IndexError):
                with contextlib.suppress(OSError):
                    conn.send(json.dumps({"cold": "bad request"}).encode())
            finally:
                for fd in fds:
                    os.close(fd)

    def run(self, argv: list[str], fds: list[int], conn: socket.socket) -> int:
        from stage0.pool_run import run_pooled

        if len(fds) != 3:
            raise Cold("no stdio")
        code = run_pooled(self, argv, fds, conn)
        self.used.set()
        return code


def _receive(conn: socket.socket) -> tuple[bytes, list[int]]:
    import array

    fds = array.array("i")
    message, ancillary, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return message, list(fds)


def keep(options: GlobalOptions, size: int | None, path: str) -> Any:
    """``nspod pool keep``: runs until stopped."""
    Keeper(options, pool_size(options) if size is None else size, path).serve()
