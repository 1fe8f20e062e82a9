"""The CRI's warm pool: RunPodSandbox served by a booted spare instead of a sandbox booted cold.

``[cri] spares = N`` in nspod.conf (default 0: none) has ``nspod cri`` keep N sandboxes booted in
the shape a plain CRI sandbox has (metadata only: no host name, DNS, ports, annotations, the
node's namespaces unshared; the CRI's pod-wide confinement, e.g. its bounding set). A
RunPodSandbox whose request differs from that one only in metadata, labels, annotations, host
name, DNS and log directory (what a kubelet always sends) claims one, dressed in those before the
answer (stage0/cri/claim.py): the pod it gets is the pod it would have booted, only sooner.
Anything else (ports, the node's namespaces, a cgroup parent, sysctls, ...) boots cold.
These are not ``nspod pool``'s spares
(``pool.ready``, booted as ``nspod run`` boots, a narrower bounding set): a CRI spare carries
``cri.ready``, renamed to ``cri.taken`` by the one call that claims it (rename: exactly one
wins), and ``cri.filling`` while it boots; each holds the fingerprint of the shape it was booted
in. A starting server stops the half-made ones, those of another shape (another nspod, other
--insecure-options) and those beyond N. ``NSPOD_POOL=0`` turns the claim off, as it does for ``nspod run``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import threading

from stage0.api.pods import find, list_pods, relaxing, remove
from stage0.api.sandbox import create_sandbox
from stage0.api.views import PodView, pod_view
from stage0.cri import claim
from stage0.errors import Error
from stage0.options import GlobalOptions
from stage0.pods.dirs import PodState
from stage0.pods.requests import PodRequest
from stage0.pool.spares import is_count

log = logging.getLogger("nspod.cri")
FILLING, READY, TAKEN = "cri.filling", "cri.ready", "cri.taken"
LOOK = 5.0  # seconds between the filler's looks
# after a claim the next spare boots this much later, not beside the containers kubelet creates
# and starts in the claimed sandbox right away (bench/cri: a boot then made them 1.5-2x slower)
REFILL_DELAY = 2.0


def spares_wanted(options: GlobalOptions) -> int:
    """``[cri] spares`` of nspod.conf (the local configuration over the system's), else 0."""
    return options.conf("cri", "spares", 0, is_count, hint="[cri] spares = N (booted sandboxes kept)")


def ready(options: GlobalOptions) -> list[PodView]:
    return [
        p
        for p in list_pods(options)
        if os.path.exists(os.path.join(p.path, READY)) and p.state is PodState.RUNNING
    ]


class Spares:
    """Keeps ``[cri] spares`` sandboxes booted in the shape a plain CRI sandbox has (as
    RunPodSandbox boots one cold: :func:`create_sandbox`); hands them out to requests of that shape."""

    def __init__(self, options: GlobalOptions) -> None:
        self.options, self.shape = options, plain_shape(options)
        self.size = spares_wanted(options)
        self.stopping = threading.Event()
        self.claimed = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._fill, name="cri-spares", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """The filler ends (a spare being booted is finished first); ready spares stay for the
        next server."""
        self.stopping.set()
        self.claimed.set()
        if self.thread is not None:
            self.thread.join()

    @property
    def fingerprint(self) -> str:
        """The shape, as a spare's marker records it: a spare booted by another nspod (another
        confinement for CRI pods) or under other --insecure-options serves no one here."""
        return hashlib.sha256(repr(self.shape).encode()).hexdigest()

    def claim(self, request: PodRequest) -> PodView | None:
        """A ready spare, now this sandbox's and dressed as the request asks, when the request is
        a spare's but for what a spare can be dressed in; None: boot cold (a request with a cgroup
        parent too: spares run in machine.slice, and a unit's slice is fixed)."""
        dressing = claim.dressing(request)
        if (
            not self.size
            or os.environ.get("NSPOD_POOL") == "0"
            or dressing is None
            or shaped(self.options, claim.core(request)) != self.shape
        ):
            return None
        for pod in ready(self.options):
            if _text(os.path.join(pod.path, READY)) != self.fingerprint:
                continue
            try:
                os.rename(os.path.join(pod.path, READY), os.path.join(pod.path, TAKEN))
            except FileNotFoundError:
                continue  # another call took it first
            self.claimed.set()
            try:
                return dressed(self.options, pod, dressing)
            except (Error, OSError, ValueError) as error:  # it serves no one now: a cold boot does
                log.warning("a claimed spare sandbox could not be dressed: %s", error)
                self._discard(pod, "undressed")
                return None
        return None

    def _fill(self) -> None:
        for pod in list_pods(self.options):  # a spare an earlier server left half-booted serves no one
            if os.path.exists(os.path.join(pod.path, FILLING)):
                self._discard(pod, "half-booted")
        kept = 0  # ready ones beyond the size, or of another shape, either: nothing would claim them
        for pod in ready(self.options):
            if _text(os.path.join(pod.path, READY)) == self.fingerprint and kept < self.size:
                kept += 1
                continue
            with contextlib.suppress(FileNotFoundError):
                os.rename(os.path.join(pod.path, READY), os.path.join(pod.path, TAKEN))
                self._discard(pod, "unwanted")
        while self.size and not self.stopping.is_set():
            if self.claimed.is_set():
                self.claimed.clear()
                self.stopping.wait(REFILL_DELAY)
            while len(ready(self.options)) < self.size and not self.stopping.is_set():
                try:
                    self._make()
                except Error as error:
                    log.warning("a spare sandbox did not boot: %s", error.message)
                    break
            self.claimed.wait(LOOK)

    def _make(self) -> None:
        pod = create_sandbox(self.options, self.shape, pull_policy="never")
        filling = os.path.join(pod.path, FILLING)
        with open(filling, "w") as file:  # a crash from here to the rename: the next start stops it
            file.write(self.fingerprint)
        os.rename(filling, os.path.join(pod.path, READY))

    def _discard(self, pod: PodView, why: str) -> None:
        log.info("stopping the %s spare sandbox %s", why, pod.uuid)
        with contextlib.suppress(Error):
            remove(self.options, pod.uuid, force=True)


def dressed(options: GlobalOptions, pod: PodView, dressing: claim.Dressing) -> PodView:
    """The claimed spare given the request's host name, DNS and annotations; its view then."""
    claim.dress(find(options, pod.uuid), dressing)
    return pod_view(find(options, pod.uuid))


def _text(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return None


def plain_shape(options: GlobalOptions) -> PodRequest:
    """The request of a plain CRI sandbox (metadata and nothing else), as it is booted."""
    from stage0.cri import translate
    from stage0.cri.proto import api_pb2

    metadata = api_pb2.PodSandboxMetadata(name="spare", uid="spare", namespace="spare")
    config = api_pb2.PodSandboxConfig(metadata=metadata, linux=api_pb2.LinuxPodSandboxConfig())
    return shaped(options, translate.sandbox_request(config))


def shaped(options: GlobalOptions, request: PodRequest) -> PodRequest:
    """The request as :func:`create_sandbox` boots it (the profile's relaxations, a sandbox)."""
    return dataclasses.replace(relaxing(options, request), sandbox=True)
