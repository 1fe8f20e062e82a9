"""RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox.

A sandbox is an app sandbox (``nspod app sandbox``): a booted pod with no apps, a machine of its
own; its ID is the pod's UUID. What the CRI asked for beyond the pod is kept in state.py; whether
it is ready is always read from the pod itself (running, and not stopped through the CRI).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
from google.protobuf import json_format

from stage0.api.pods import find, list_pods, remove, stop
from stage0.api.sandbox import create_sandbox
from stage0.api.views import PodView
from stage0.cri import claim, translate, warm
from stage0.cri.lookup import find_view, running
from stage0.cri.proto import api_pb2
from stage0.cri.state import SandboxRecord, State
from stage0.cri.status import Failure, answering, not_found
from stage0.errors import UnavailableError
from stage0.options import GlobalOptions

READY, NOTREADY = api_pb2.SANDBOX_READY, api_pb2.SANDBOX_NOTREADY


class Sandboxes:
    options: GlobalOptions
    state: State
    spares: warm.Spares
    _sandbox_locks: dict[str, threading.Lock]
    _guard: threading.Lock

    def sandbox_lock(self, ident: str) -> threading.Lock:
        """One change of a sandbox at a time (stop, remove, its containers' create and remove)."""
        with self._guard:
            return self._sandbox_locks.setdefault(ident, threading.Lock())

    def record(self, ident: str) -> SandboxRecord:
        record = self.state.sandbox(ident)
        if record is None:
            raise not_found("pod sandbox", ident)
        return record

    def pod_of(self, record: SandboxRecord) -> PodView | None:
        return find_view(self.options, record.id)

    def sandbox_state(self, record: SandboxRecord, pod: PodView | None) -> api_pb2.PodSandboxState:
        return READY if running(pod) and not record.stopped else NOTREADY

    @answering
    def RunPodSandbox(
        self, request: api_pb2.RunPodSandboxRequest, context: grpc.ServicerContext
    ) -> api_pb2.RunPodSandboxResponse:
        config = request.config
        meta = config.metadata
        pod_request = translate.sandbox_request(config)
        if self.state.sandbox_named(meta.name, meta.uid, meta.namespace, meta.attempt):
            raise Failure(
                grpc.StatusCode.ALREADY_EXISTS,
                f"pod sandbox {meta.namespace}/{meta.name} (attempt {meta.attempt}) exists",
            )
        created = time.time_ns()
        # a booted spare of this request's shape (stage0/cri/warm.py), else one booted now
        pod = self.spares.claim(pod_request) or create_sandbox(
            self.options, pod_request, pull_policy="never"
        )
        self.state.put_sandbox(
            SandboxRecord(
                id=pod.uuid,
                name=meta.name,
                uid=meta.uid,
                namespace=meta.namespace,
                attempt=meta.attempt,
                created_ns=created,
                labels=dict(config.labels),
                annotations=dict(config.annotations),
                runtime_handler=request.runtime_handler,
                log_directory=config.log_directory,
                hostname=config.hostname,
                host_network=translate.host_network(config),
                host_pid=pod_request.host_pid,
                pod_dir=pod.path,
                config=json_format.MessageToJson(config),
            )
        )
        return api_pb2.RunPodSandboxResponse(pod_sandbox_id=pod.uuid)

    @answering
    def StopPodSandbox(
        self, request: api_pb2.StopPodSandboxRequest, context: grpc.ServicerContext
    ) -> api_pb2.StopPodSandboxResponse:
        record = self.state.sandbox(request.pod_sandbox_id)
        if record is None:  # idempotent: what is gone is stopped
            return api_pb2.StopPodSandboxResponse()
        with self.sandbox_lock(record.id):
            pod = self.pod_of(record)
            if running(pod):
                stop_pod(self.options, record.id)
            self.state.mark_stopped(record.id)
        return api_pb2.StopPodSandboxResponse()

    @answering
    def RemovePodSandbox(
        self, request: api_pb2.RemovePodSandboxRequest, context: grpc.ServicerContext
    ) -> api_pb2.RemovePodSandboxResponse:
        record = self.state.sandbox(request.pod_sandbox_id)
        if record is None:
            return api_pb2.RemovePodSandboxResponse()
        with self.sandbox_lock(record.id):
            pod = self.pod_of(record)
            if pod is not None:
                remove(self.options, record.id, force=True)
            for container in self.state.containers(record.id):
                self.state.drop_container(container.id)
            self.state.drop_sandbox(record.id)
        return api_pb2.RemovePodSandboxResponse()

    @answering
    def PodSandboxStatus(
        self, request: api_pb2.PodSandboxStatusRequest, context: grpc.ServicerContext
    ) -> api_pb2.PodSandboxStatusResponse:
        record = self.record(request.pod_sandbox_id)
        pod = self.pod_of(record)
        status = sandbox_status(record, self.sandbox_state(record, pod), pod)
        info = {}
        if request.verbose:
            info["info"] = _json(
                {
                    "pod_dir": pod.path if pod else None,
                    "machine": pod.machine if pod else None,
                    **claim.named(pod.path if pod else None),
                }
            )
        return api_pb2.PodSandboxStatusResponse(status=status, info=info)

    @answering
    def ListPodSandbox(
        self, request: api_pb2.ListPodSandboxRequest, context: grpc.ServicerContext
    ) -> api_pb2.ListPodSandboxResponse:
        wanted = request.filter if request.HasField("filter") else None
        pods = {pod.uuid: pod for pod in list_pods(self.options)}
        items = []
        for record in self.state.sandboxes():
            if wanted and wanted.id and not record.id.startswith(wanted.id):
                continue
            if wanted and not labels_match(record.labels, wanted.label_selector):
                continue
            state = self.sandbox_state(record, pods.get(record.id))
            if wanted and wanted.HasField("state") and wanted.state.state != state:
                continue
            items.append(
                api_pb2.PodSandbox(
                    id=record.id,
                    metadata=metadata(record),
                    state=state,
                    created_at=record.created_ns,
                    labels=record.labels,
                    annotations=record.annotations,
                    runtime_handler=record.runtime_handler,
                )
            )
        return api_pb2.ListPodSandboxResponse(items=items)


def stop_pod(options: GlobalOptions, ident: str) -> None:
    if not stop(options, find(options, ident)):
        raise UnavailableError(
            f"stopping pod {ident} failed", hint="see 'journalctl -u nspod-cri' and the pod's journal"
        )


def metadata(record: SandboxRecord) -> api_pb2.PodSandboxMetadata:
    return api_pb2.PodSandboxMetadata(
        name=record.name, uid=record.uid, namespace=record.namespace, attempt=record.attempt
    )


def sandbox_status(
    record: SandboxRecord, state: api_pb2.PodSandboxState, pod: PodView | None
) -> api_pb2.PodSandboxStatus:
    addresses = () if record.host_network or pod is None or state != READY else pod.addresses()
    network = api_pb2.PodSandboxNetworkStatus(
        ip=addresses[0] if addresses else "",
        additional_ips=[api_pb2.PodIP(ip=a) for a in addresses[1:]],
    )
    node, own = api_pb2.NamespaceMode.NODE, api_pb2.NamespaceMode.POD
    ipc = sandbox_config(record).linux.security_context.namespace_options.ipc
    options = api_pb2.NamespaceOption(
        network=node if record.host_network else own, pid=node if record.host_pid else own, ipc=ipc
    )
    namespaces = api_pb2.Namespace(options=options)
    return api_pb2.PodSandboxStatus(
        id=record.id,
        metadata=metadata(record),
        state=state,
        created_at=record.created_ns,
        network=network,
        linux=api_pb2.LinuxPodSandboxStatus(namespaces=namespaces),
        labels=record.labels,
        annotations=record.annotations,
        runtime_handler=record.runtime_handler,
    )


def sandbox_config(record: SandboxRecord) -> api_pb2.PodSandboxConfig:
    """The config the sandbox was run with (as its record keeps it; empty where none was kept)."""
    config = api_pb2.PodSandboxConfig()
    if record.config:
        json_format.Parse(record.config, config, ignore_unknown_fields=True)
    return config


def labels_match(labels: dict[str, str], selector: Any) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _json(value: object) -> str:
    import json

    return json.dumps(value)
