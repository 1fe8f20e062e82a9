"""RunPodSandbox served by the warm pool: a booted spare claimed instead of a sandbox booted cold.

A spare is what ``nspod app sandbox`` boots with the defaults (stage0/pool.py's ``make_spare``:
no apps, the default network, no host name, DNS, ports, volumes or annotations). A CRI sandbox
whose request is that same request can be served by one as a cold boot would serve it — the pod
it gets is the pod it would have booted, only sooner. Anything else (a host name, DNS, host
network, a security context that changes the pod) boots cold, as ``nspod run``'s pool does.
``NSPOD_POOL=0`` turns the claim off, as it does for ``nspod run``.
"""

from __future__ import annotations

import dataclasses
import os

from stage0.options import GlobalOptions
from stage0.pods import Pod, Pods
from stage0.requests import PodRequest

SPARE = PodRequest(apps=(), sandbox=True)  # what make_spare boots


def pool_safe(request: PodRequest) -> bool:
    """A spare can serve this sandbox: its request is the spare's own."""
    return dataclasses.replace(request, sandbox=True) == SPARE


def claim(options: GlobalOptions, request: PodRequest) -> Pod | None:
    """A ready spare of the store, now this sandbox's; None: boot cold."""
    from stage0.pool import claim as claim_spare
    from stage0.sandbox import save_settings

    if os.environ.get("NSPOD_POOL") == "0" or not pool_safe(request):
        return None
    pod = claim_spare(Pods(options.dir))
    if pod is None:
        return None
    save_settings(pod.path, request)  # the spare's own already; written so the pod says what it serves
    # the keeper is not woken: it boots the next spare at its next look (within 5 s), not now,
    # beside the containers kubelet creates and starts in this sandbox right after (bench/cri:
    # a spare booting then made their create and start 1.5-2x slower)
    return pod
