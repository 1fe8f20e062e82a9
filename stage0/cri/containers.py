"""CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus, ListContainers.

A container is an app of its sandbox's pod (``nspod app add``); its ID is made here (state.py),
its app's name is derived from its name and ID (translate.app_name). Its state, exit code and
times are read from the pod (the pod's systemd and what the app's reaper recorded).
"""

from __future__ import annotations

import dataclasses
import time

import grpc
from google.protobuf import json_format

from stage0.api.pods import list_pods
from stage0.api.sandbox import add_app, remove_app, start_app, stop_app
from stage0.api.views import AppState, AppView, PodView
from stage0.cri import logs, translate
from stage0.cri.lookup import app_image, app_state, find_view, live_apps, running
from stage0.cri.proto import api_pb2
from stage0.cri.sandboxes import READY, Sandboxes, labels_match
from stage0.cri.state import ContainerRecord, new_container_id
from stage0.cri.status import Failure, answering, not_found

CREATED, RUNNING = api_pb2.CONTAINER_CREATED, api_pb2.CONTAINER_RUNNING
EXITED, UNKNOWN = api_pb2.CONTAINER_EXITED, api_pb2.CONTAINER_UNKNOWN
STATES = {"created": CREATED, "starting": RUNNING, "running": RUNNING, "stopping": RUNNING, "exited": EXITED}


class Containers(Sandboxes):
    def container_record(self, ident: str) -> ContainerRecord:
        record = self.state.container(ident)
        if record is None:
            raise not_found("container", ident)
        return record

    def live_pod(self, record: ContainerRecord) -> PodView | None:
        pod = find_view(self.options, record.sandbox_id)
        return pod if running(pod) else None

    def live_state(self, pod: PodView, app: str, *, recorded: bool = False) -> AppState | None:
        seen = live_apps(self.options, pod, recorded=recorded).get(app)
        return seen.state if seen is not None else None

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
            # its stdio: FIFOs to its writer, a stdin attach writes to, a pty (stage1/crilog.py)
            app = dataclasses.replace(
                app,
                log_path=log_path,
                cri_stdio=True,
                stdin=config.stdin,
                stdin_once=config.stdin_once,
                tty=config.tty,
            )
            created = time.time_ns()
            name = add_app(self.options, pod.uuid, app, pull_policy="never", volumes=volumes)
            record = ContainerRecord(
                id=ident,
                sandbox_id=sandbox.id,
                app=name,
                name=meta.name,
                attempt=meta.attempt,
                created_ns=created,
                image=config.image.image,
                image_ref=app_image(find_view(self.options, pod.uuid), name),
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
                remove_app(self.options, pod.uuid, name)
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
        state = self.live_state(pod, record.app, recorded=True)  # created or not: the records say
        if state is not AppState.CREATED:
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"container {record.id} is {state or 'gone'}, not created",
            )
        start_app(self.options, pod.uuid, record.app)
        return api_pb2.StartContainerResponse()

    @answering
    def StopContainer(
        self, request: api_pb2.StopContainerRequest, context: grpc.ServicerContext
    ) -> api_pb2.StopContainerResponse:
        record = self.container_record(request.container_id)
        pod = self.live_pod(record)
        if pod is not None and self.live_state(pod, record.app) in (AppState.RUNNING, AppState.STARTING):
            stop_app(self.options, pod.uuid, record.app, float(request.timeout))  # 0: SIGKILL at once
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
            if pod is not None and record.app in (app.name for app in pod.apps):
                stop_app(self.options, pod.uuid, record.app, 0)
                remove_app(self.options, pod.uuid, record.app)
            self.state.drop_container(record.id)
        return api_pb2.RemoveContainerResponse()

    @answering
    def ContainerStatus(
        self, request: api_pb2.ContainerStatusRequest, context: grpc.ServicerContext
    ) -> api_pb2.ContainerStatusResponse:
        record = self.container_record(request.container_id)
        # the records say created, running or exited (all it answers): the PID needs the pod's systemd
        view = find_view(self.options, record.sandbox_id)
        seen = app_state(self.options, view, record.app, recorded=not request.verbose)
        state = STATES.get(seen.state, UNKNOWN)
        code = seen.exit_code
        reason = exit_reason(seen) if state == EXITED else ""
        status = api_pb2.ContainerStatus(
            id=record.id,
            metadata=api_pb2.ContainerMetadata(name=record.name, attempt=record.attempt),
            state=state,
            created_at=record.created_ns,
            started_at=_ns(seen.started),
            finished_at=_ns(seen.exited) if state == EXITED else 0,
            exit_code=code or 0,
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
            info["info"] = _json({"pid": seen.pid, "app": record.app, "sandboxID": record.sandbox_id})
        return api_pb2.ContainerStatusResponse(status=status, info=info)

    @answering
    def ListContainers(
        self, request: api_pb2.ListContainersRequest, context: grpc.ServicerContext
    ) -> api_pb2.ListContainersResponse:
        wanted = request.filter if request.HasField("filter") else None
        pods = {pod.uuid: pod for pod in list_pods(self.options)}
        states: dict[str, dict[str, AppView]] = {}
        containers = []
        for record in self.state.containers():
            if wanted and wanted.id and not record.id.startswith(wanted.id):
                continue
            if wanted and wanted.pod_sandbox_id and not record.sandbox_id.startswith(wanted.pod_sandbox_id):
                continue
            if wanted and not labels_match(record.labels, wanted.label_selector):
                continue
            if record.sandbox_id not in states:
                states[record.sandbox_id] = live_apps(self.options, pods.get(record.sandbox_id))
            seen = states[record.sandbox_id].get(record.app) or app_state(
                self.options, pods.get(record.sandbox_id), record.app
            )
            state = STATES.get(seen.state, UNKNOWN)
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


def _ns(seconds: float | None) -> int:
    return int(seconds * 1e9) if seconds is not None else 0


def _json(value: object) -> str:
    import json

    return json.dumps(value)


def exit_reason(seen: AppView) -> str:
    """Why an exited container ended, in kubelet's words: the OOM killer's (systemd's Result, as the
    pod's reaper recorded it), else by its code."""
    return "OOMKilled" if seen.reason == "oom-kill" else "Completed" if seen.exit_code == 0 else "Error"
