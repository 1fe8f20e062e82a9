"""A claimed spare sandbox dressed as the request asked (stage0/cri/warm.py): what a kubelet sends
beyond the spare's plain shape that a booted pod can still take, and taking it.

A kubelet's RunPodSandbox always names a host name and DNS (servers, searches, options), labels,
annotations and a log directory. Labels and the log directory live in the CRI's own records
(state.py) and the rest lands in a few files and the pod's UTS namespace, so a spare booted
without them is given them before RunPodSandbox answers: the host name set in the pod (as
nspawn's --hostname does at boot), the pod's /etc/hostname and /etc/hosts, the apps' resolv.conf
(stage1's /nspod/etc/resolv.conf, bound into each app when it starts), the pod's spec (pod.json:
what ``app add``, ``nspod list`` and ``inspect`` read) and its manifest's annotations, each as a
cold boot of the same request writes it. A spare has no apps yet, so nothing in it can race
these writes; each file is replaced whole. Anything else a request differs in boots cold.
"""

from __future__ import annotations

import dataclasses
import json
import os

from stage0.errors import Error
from stage0.host.atomic import write_atomic
from stage0.host.executor import machine_leader
from stage0.host.runner import run
from stage0.pods.dirs import Pod
from stage0.pods.dns import DnsRequest, hosts_file, resolv_conf
from stage0.pods.planner import OURS
from stage0.pods.requests import PodRequest
from stage0.pods.sandbox import changing
from stage1.abi import PodSpec

NSENTER = "/usr/bin/nsenter"
POD_ETC = "nspod/etc"  # stage1/app_unit.py POD_ETC: the apps' resolv.conf and hosts, in the tree


@dataclasses.dataclass(frozen=True, slots=True)
class Dressing:
    """What a claimed spare is given: its host name (None: its machine name, as a spare has),
    the apps' resolv.conf (None: the spare's own, the network's or the host's) and the pod's
    annotations (those the manifest takes)."""

    hostname: str | None = None
    resolv: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()


def core(request: PodRequest) -> PodRequest:
    """The request without what a spare can be dressed in: equal to a spare's, it may claim one."""
    return dataclasses.replace(request, hostname=None, dns=DnsRequest(), annotations=())


def dressing(request: PodRequest) -> Dressing | None:
    """The request's dressing (pure); None when its DNS is none a file can carry (the host's own
    file, the image's, a bad one: a cold boot says why), or when it names /etc/hosts entries."""
    if request.dns == DnsRequest():
        return Dressing(request.hostname, None, request.annotations)
    try:
        text, from_host = resolv_conf(request.dns)
        hosts, hosts_host = hosts_file(request.dns, request.hostname or "localhost")
    except Error:
        return None
    if text is None or from_host or hosts is not None or hosts_host:
        return None
    return Dressing(request.hostname, text, request.annotations)


def dressed_spec(spec: PodSpec, dress: Dressing) -> PodSpec:
    """The spec as a cold boot of the request plans it (stage0/pods/planner.py)."""
    spec = dataclasses.replace(spec, hostname=dress.hostname or spec.machine)
    if dress.resolv is None:
        return spec
    return dataclasses.replace(
        spec, resolv_conf=dress.resolv, resolv_conf_from_host=False, dns_default=False
    )


def dressed_manifest(manifest: dict[str, object], dress: Dressing) -> dict[str, object]:
    """The manifest with the request's annotations before nspod's own (as the planner orders them)."""
    kept = manifest.get("annotations")
    ours = (
        [a for a in kept if isinstance(a, dict) and a.get("name") in OURS] if isinstance(kept, list) else []
    )
    asked = [{"name": k, "value": v} for k, v in dress.annotations if k not in OURS]
    return {**manifest, "annotations": asked + ours}


def etc_files(spec: PodSpec) -> dict[str, str]:
    """The pod's files that name its host name or carry its DNS, by path in the stage1 tree (as
    stage1/units.py writes them at boot)."""
    files = {
        "etc/hostname": spec.hostname + "\n",
        "etc/hosts": f"127.0.0.1 localhost {spec.hostname}\n::1 localhost {spec.hostname}\n",
    }
    if spec.resolv_conf is not None:
        files[f"{POD_ETC}/resolv.conf"] = spec.resolv_conf
    return files


def dress(pod: Pod, dress: Dressing) -> None:
    """Give the running, app-less spare ``pod`` what ``dress`` says, as if it had booted so."""
    with changing(pod):  # as an app add changes the pod's files: one change at a time
        with open(pod.paths.spec) as file:
            spec = PodSpec.from_json(file.read())
        new = dressed_spec(spec, dress)
        if new.hostname != spec.hostname:
            set_hostname(machine_leader(spec.machine), new.hostname)
        for path, text in etc_files(new).items():
            # a rename: the file the pod's mount namespace may have bound over (the host's
            # resolv.conf, read-only) is detached there by the kernel, not written through
            target = os.path.join(pod.paths.stage1, path)
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            write_atomic(target, text, sync=False)
        with open(pod.paths.manifest) as file:
            manifest = json.load(file)
        # as prepare writes them (stage0/pods/prepare.py write_pod)
        write_atomic(
            pod.paths.manifest, json.dumps(dressed_manifest(manifest, dress), indent=2) + "\n", sync=False
        )
        write_atomic(pod.paths.spec, new.to_json(), sync=False)


def set_hostname(leader: int, hostname: str) -> None:
    """sethostname() in the UTS namespace of the pod's leader (the host's own mount namespace:
    only the host's hostname(1) runs, the pod gives it nothing)."""
    run([NSENTER, f"--target={leader}", "--uts", "--", "/usr/bin/hostname", hostname], what="sethostname")


def named(pod_dir: str | None) -> dict[str, str | None]:
    """The host name and resolv.conf the pod's spec records (a sandbox's verbose status): a
    claimed spare's as a cold boot's. The resolv.conf is None where the network's or the host's
    is the default."""
    try:
        with open(os.path.join(pod_dir or "", "pod.json")) as file:
            spec = PodSpec.from_json(file.read())
    except (OSError, ValueError):
        return {}
    return {"hostname": spec.hostname, "resolv_conf": spec.resolv_conf}
