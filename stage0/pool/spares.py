"""The warm pool's spares on disk and the rules that pick them (stage0/pool/keeper.py keeps them
booted): a spare being made carries ``pool.filling`` (flocked by its maker); one ready carries
``pool.ready``, renamed to ``pool.taken`` by the one run that claims it (rename: exactly one wins);
a run a spare cannot serve as a cold start would is refused (:func:`cold_reason`)."""

from __future__ import annotations

import argparse
import fcntl
import os
import time
from typing import TYPE_CHECKING

from stage0.errors import UnavailableError
from stage0.images.store.locks import lock_held

if TYPE_CHECKING:
    pass
from stage0.options import GlobalOptions
from stage0.pods.dirs import Pod, Pods, PodState
from stage0.settings import Pooling, cold_pod_options, global_fields

FILLING, READY, TAKEN = "pool.filling", "pool.ready", "pool.taken"
BOOT_TIMEOUT = 120.0  # how long a drain waits for a spare being made to be ready (or its maker to die)


class Cold(Exception):
    """The pool cannot take this run; ``nspod run`` starts it cold."""


def pool_size(options: GlobalOptions) -> int:
    """``[pool] size`` of nspod.conf (the local configuration over the system's), else 0."""
    return options.conf("pool", "size", 0, is_count, hint="[pool] size = N (spare pods)")


def is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def half_made(pod: Pod) -> bool:
    """A spare whose maker died before it was ready (``nspod gc`` stops it)."""
    marker = os.path.join(pod.path, FILLING)
    return os.path.exists(marker) and not lock_held(marker)


def stop_half_made(options: GlobalOptions, pods: Pods) -> list[str]:
    """Stop the running spares whose maker died half-way (a keeper killed or stopped while a spare
    booted): no pool verb would see them, and a keeper would make others beside them."""
    from stage0.host.stage1client import Stage1Client

    stopped = []
    for pod in pods.all():
        if pod.state() is PodState.RUNNING and half_made(pod):
            Stage1Client.of(options, pod.path).stop()
            stopped.append(pod.uuid)
    return stopped


def drain(options: GlobalOptions, pods: Pods) -> list[str]:
    """Stop every spare: the ready ones, those being made (once their maker is done with them)
    and the half-made ones; their UUIDs."""
    from stage0.host.stage1client import Stage1Client

    for each in pods.all():
        _wait_made(os.path.join(each.path, FILLING))
    stopped = []
    while (pod := claim(pods)) is not None:  # claimed first: no run can take it meanwhile
        Stage1Client.of(options, pod.path).stop()
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
    from stage0.api.pods import prepare
    from stage0.host.stage1client import Stage1Client
    from stage0.pods.requests import PodRequest
    from stage0.pods.sandbox import save_settings

    request = PodRequest(apps=(), sandbox=True)
    pod = prepare(options, request, to_run=True)
    marker = os.path.join(pod.path, FILLING)
    fd = os.open(marker, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        save_settings(pod.path, request)
        if pod.start(options, "--detach") != 0:
            raise UnavailableError(
                f"spare pod {os.path.basename(pod.path)} did not boot", hint="see its journal"
            )
        Stage1Client.recorded(pod.path).warm(f"nspod-{os.path.basename(pod.path)}")
        os.rename(marker, os.path.join(pod.path, READY))
    finally:
        os.close(fd)
    return os.path.basename(pod.path)


def same_host(options: GlobalOptions, keeper: GlobalOptions) -> bool:
    """Whether the keeper's store, configuration and stage1 are the command's own (else its
    command runs where it was given, not in the keeper)."""
    same = all(getattr(options, f) == getattr(keeper, f) for f in global_fields(Pooling.SAME))
    return same and not any(getattr(options, f) for f in global_fields(Pooling.COLD))


def cold_reason(args: argparse.Namespace, options: GlobalOptions, keeper: GlobalOptions) -> str | None:
    """Why a spare cannot serve this ``run`` (None: it can)."""
    if args.verb != "run":
        return "not a run"
    if not same_host(options, keeper):
        return "another store, configuration or stage1"
    given = [o for o in cold_pod_options() if getattr(args, o, None) not in (None, False, [], (), "")]
    if given:
        return f"--{given[0].replace('_', '-')}"
    if args.net not in (None, [], ["default"]):
        return "--net"
    if args.mds_register is not None:
        return "--mds-register"
    if any(str(t).startswith("--health-") for t in args.images or ()):
        return "a health check"  # the spare booted without its units (and the host journal's socket)
    if args.pull_policy == "update":
        return "--pull-policy=update asks the remote"
    return None
