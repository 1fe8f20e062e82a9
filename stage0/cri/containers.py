"""CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus, ListContainers.

A container is an app of its sandbox's pod (``nspod app add``); its ID is made here (state.py),
its app's name is derived from its name and ID (translate.app_name). Its state, exit code and
times are read from the pod (the pod's systemd and what the app's reaper recorded).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import grpc
from google.protobuf import json_format

from stage0.cri import backend, logs, translate
from stage0.cri.proto import api_pb2
from stage0.cri.sandboxes import READY, Sandboxes, labels_match
from stage0.cri.state import ContainerRecord, new_container_id
from stage0.cri.status import Failure, answering, not_found
from stage0.pods import Pod, PodState

CREATED, RUNNING = api_pb2.CONTAINER_CREATED, api_pb2.CONTAINER_RUNNING
EXITED, UNKNOWN = api_pb2.CONTAINER_EXITED, api_pb2.CONTAINER_UNKNOWN
STATES = {"created": CREATED, "starting": RUNNING, "running": RUNNING, "stopping": RUNNING, "exited": EXITED}
STOP_TIMEOUT_DEFAULT = 10  # seconds, when StopContainer says 0 it means: kill at once


class Containers(Sandboxes):
    def container_record(self, ident: str) -> ContainerRecord:
        record = self.state.container(ident)
        if record is None:
            raise not_found("container", ident)
        return record

    def live_pod(self, record: ContainerRecord) -> Pod | None:
        pod = backend.find_pod(self.options, record.sandbox_id)
        return pod if pod is not None and pod.state() is PodState.RUNNING else None

    @answering
    def CreateContainer(
        self, request: api_pb2.CreateContainerRequest, context: grpc.ServicerContext
    ) -> api_pb2.CreateContainerResponse:
        sandbox = self.record(request.pod_sandbox_id)
        config = request.config
        with self.sandbox_lock(sandbox.id):
            pod = self.pod_of(sandbox)
            if pod is None or self.sandbox_state(sandbox, pod) != READY:
                raise Failure(grpc.StatusCode.FAILED_PRECONDITION, f"pod sandbox {sandbox.id} is not ready")
            meta = config.metadata
            if self.state.container_named(sandbox.id, meta.name, meta.attempt):
                raise Failure(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"container {meta.name} (attempt {meta.attempt}) exists in sandbox {sandbox.id}",
                )
            ident = new_container_id()
            image = {"image": config.image.image}
            app, volumes = translate.container_request(config, request.sandbox_config, ident, image)
            # its log file, which its writer in the pod fills (stage0/cri/logs.py)
            log_path = logs.container_log_path(sandbox.log_directory, config.log_path)
            if log_path:
                logs.create_log_file(log_path)
                app = dataclasses.replace(app, log_path=log_path)
            created = time.time_ns()
            name = backend.add_app(self.options, pod, app, volumes)
            record = ContainerRecord(
                id=ident,
                sandbox_id=sandbox.id,
                app=name,
                name=meta.name,
                attempt=meta.attempt,
                created_ns=created,
                image=config.image.image,
                image_ref=backend.app_images(pod).get(name, ""),
                labels=dict(config.labels),
                annotations=dict(config.annotations),
                log_path=log_path,
                mounts=[
                    json_format.MessageToDict(m, preserving_proto_field_name=True) for m in config.mounts
                ],
                config=json_format.MessageToJson(config),
            )
            try:
                self.state.put_container(record)
            except OSError:
                backend.remove_app(self.options, pod, name)
                raise
        return api_pb2.CreateContainerResponse(container_id=ident)

    @answering
    def StartContainer(
        self, request: api_pb2.StartContainerRequest, context: grpc.ServicerContext
    ) -> api_pb2.StartContainerResponse:
        record = self.container_record(request.container_id)
        pod = self.live_pod(record)
        if pod is None:
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION, f"the sandbox of container {record.id} is not running"
            )
        state = backend.app_states(pod).get(record.app, {}).get("state")
        if state != "created":
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"container {record.id} is {state or 'gone'}, not created",
            )
        backend.start_app(self.options, pod, record.app)
        return api_pb2.StartContainerResponse()

    @answering
    def StopContainer(
        self, request: api_pb2.StopContainerRequest, context: grpc.ServicerContext
    ) -> api_pb2.StopContainerResponse:
        record = self.container_record(request.container_id)
        pod = self.live_pod(record)
        if pod is not None and backend.app_states(pod).get(record.app, {}).get("state") in (
            "running",
            "starting",
        ):
            backend.stop_app(self.options, pod, record.app, float(request.timeout))
        return api_pb2.StopContainerResponse()

    @answering
    def RemoveContainer(
        self, request: api_pb2.RemoveContainerRequest, context: grpc.ServicerContext
    ) -> api_pb2.RemoveContainerResponse:
        record = self.state.container(request.container_id)
        if record is None:  # idempotent
            return api_pb2.RemoveContainerResponse()
        with self.sandbox_lock(record.sandbox_id):
            pod = self.live_pod(record)
            if pod is not None:
                backend.stop_app(self.options, pod, record.app, 0)
                backend.remove_app(self.options, pod, record.app)
            self.state.drop_container(record.id)
        return api_pb2.RemoveContainerResponse()

    @answering
    def ContainerStatus(
        self, request: api_pb2.ContainerStatusRequest, context: grpc.ServicerContext
    ) -> api_pb2.ContainerStatusResponse:
        record = self.container_record(request.container_id)
        pod = backend.find_pod(self.options, record.sandbox_id)
        seen = app_state(pod, record.app)
        state = STATES.get(str(seen.get("state")), UNKNOWN)
        code = seen.get("exit_code")
        reason = ""
        if state == EXITED:
            reason = "Completed" if code == 0 else "OOMKilled" if seen.get("oom") else "Error"
        status = api_pb2.ContainerStatus(
            id=record.id,
            metadata=api_pb2.ContainerMetadata(name=record.name, attempt=record.attempt),
            state=state,
            created_at=record.created_ns,
            started_at=_ns(seen.get("started")),
            finished_at=_ns(seen.get("exited")) if state == EXITED else 0,
            exit_code=int(code) if isinstance(code, int) else 0,
            image=api_pb2.ImageSpec(image=record.image),
            image_ref=record.image_ref,
            reason=reason,
            labels=record.labels,
            annotations=record.annotations,
            mounts=[json_format.ParseDict(m, api_pb2.Mount()) for m in record.mounts],
            log_path=record.log_path,
        )
        info = {}
        if request.verbose:
            info["info"] = _json({"pid": seen.get("pid"), "app": record.app, "sandboxID": record.sandbox_id})
        return api_pb2.ContainerStatusResponse(status=status, info=info)

    @answering
    def ListContainers(
        self, request: api_pb2.ListContainersRequest, context: grpc.ServicerContext
    ) -> api_pb2.ListContainersResponse:
        wanted = request.filter if request.HasField("filter") else None
        pods = backend.all_pods(self.options)
        states: dict[str, dict[str, dict[str, Any]]] = {}
        containers = []
        for record in self.state.containers():
            if wanted and wanted.id and not record.id.startswith(wanted.id):
                continue
            if wanted and wanted.pod_sandbox_id and not record.sandbox_id.startswith(wanted.pod_sandbox_id):
                continue
            if wanted and not labels_match(record.labels, wanted.label_selector):
                continue
            if record.sandbox_id not in states:
                states[record.sandbox_id] = pod_app_states(pods.get(record.sandbox_id))
            seen = states[record.sandbox_id].get(record.app) or app_state(
                pods.get(record.sandbox_id), record.app
            )
            state = STATES.get(str(seen.get("state")), UNKNOWN)
            if wanted and wanted.HasField("state") and wanted.state.state != state:
                continue
            containers.append(
                api_pb2.Container(
                    id=record.id,
                    pod_sandbox_id=record.sandbox_id,
                    metadata=api_pb2.ContainerMetadata(name=record.name, attempt=record.attempt),
                    image=api_pb2.ImageSpec(image=record.image),
                    image_ref=record.image_ref,
                    state=state,
                    created_at=record.created_ns,
                    labels=record.labels,
                    annotations=record.annotations,
                )
            )
        return api_pb2.ListContainersResponse(containers=containers)


def pod_app_states(pod: Pod | None) -> dict[str, dict[str, Any]]:
    return backend.app_states(pod) if pod is not None else {}


def app_state(pod: Pod | None, app: str) -> dict[str, Any]:
    """The app's state: from the running pod, else from what its reaper recorded (an ended
    sandbox's apps have all exited; one that never started is still 'created')."""
    if pod is not None and pod.state() is PodState.RUNNING:
        live = backend.app_states(pod).get(app)
        if live is not None:
            return live
    return backend.recorded_app_state(pod, app)


def _ns(seconds: object) -> int:
    return int(float(seconds) * 1e9) if isinstance(seconds, int | float) else 0


def _json(value: object) -> str:
    import json

    return json.dumps(value)
