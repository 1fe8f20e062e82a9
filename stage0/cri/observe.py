"""The RuntimeService's calls about a running container's output, usage and limits:
ReopenContainerLog (logs.py), ContainerStats, ListContainerStats, PodSandboxStats,
ListPodSandboxStats (stats.py) and UpdateContainerResources (resources.py). A mixin of
runtime.py's servicer: thin translation between the CRI's messages and those modules.
"""

from __future__ import annotations

import grpc

from stage0.cri import backend, logs, resources, stats
from stage0.cri.containers import Containers
from stage0.cri.proto import api_pb2
from stage0.cri.state import ContainerRecord, SandboxRecord
from stage0.cri.status import Failure, answering


class Observing(Containers):
    def _running(self, record: ContainerRecord) -> bool:
        pod = self.live_pod(record)
        return pod is not None and backend.app_states(pod).get(record.app, {}).get("state") in (
            "running",
            "starting",
        )

    @answering
    def ReopenContainerLog(
        self, request: api_pb2.ReopenContainerLogRequest, context: grpc.ServicerContext
    ) -> api_pb2.ReopenContainerLogResponse:
        record = self.container_record(request.container_id)
        try:
            logs.reopen(record.log_path, running=self._running(record))
        except logs.NotRunning as error:
            raise Failure(grpc.StatusCode.FAILED_PRECONDITION, f"container {record.id}: {error}") from None
        return api_pb2.ReopenContainerLogResponse()

    @answering
    def UpdateContainerResources(
        self, request: api_pb2.UpdateContainerResourcesRequest, context: grpc.ServicerContext
    ) -> api_pb2.UpdateContainerResourcesResponse:
        record = self.container_record(request.container_id)
        pod = self.live_pod(record)
        if pod is None or not self._running(record):
            raise Failure(grpc.StatusCode.FAILED_PRECONDITION, f"container {record.id} is not running")
        if request.HasField("linux"):
            try:
                resources.update(self.options, pod.path, record.app, request.linux)
            except resources.UpdateError as error:
                raise Failure(grpc.StatusCode.FAILED_PRECONDITION, str(error)) from None
        return api_pb2.UpdateContainerResourcesResponse()

    def _container_stats(self, record: ContainerRecord) -> api_pb2.ContainerStats:
        message = api_pb2.ContainerStats(
            attributes=api_pb2.ContainerAttributes(
                id=record.id,
                metadata=api_pb2.ContainerMetadata(name=record.name, attempt=record.attempt),
                labels=record.labels,
                annotations=record.annotations,
            )
        )
        pod = backend.find_pod(self.options, record.sandbox_id)
        if pod is not None:
            stats.fill_container(message, stats.container_stats(pod.path, record.app))
        return message

    @answering
    def ContainerStats(
        self, request: api_pb2.ContainerStatsRequest, context: grpc.ServicerContext
    ) -> api_pb2.ContainerStatsResponse:
        record = self.container_record(request.container_id)
        return api_pb2.ContainerStatsResponse(stats=self._container_stats(record))

    @answering
    def ListContainerStats(
        self, request: api_pb2.ListContainerStatsRequest, context: grpc.ServicerContext
    ) -> api_pb2.ListContainerStatsResponse:
        wanted = request.filter
        found = [
            self._container_stats(record)
            for record in self.state.containers()
            if record.id.startswith(wanted.id)
            and record.sandbox_id.startswith(wanted.pod_sandbox_id)
            and stats.selected(record.labels, wanted.label_selector)
        ]
        return api_pb2.ListContainerStatsResponse(stats=found)

    def _sandbox_stats(self, record: SandboxRecord) -> api_pb2.PodSandboxStats:
        message = api_pb2.PodSandboxStats(
            attributes=api_pb2.PodSandboxAttributes(
                id=record.id,
                metadata=api_pb2.PodSandboxMetadata(
                    name=record.name, uid=record.uid, namespace=record.namespace, attempt=record.attempt
                ),
                labels=record.labels,
                annotations=record.annotations,
            )
        )
        pod = self.pod_of(record)
        if pod is not None:
            stats.fill_pod(message, stats.pod_stats(pod.path))
        message.linux.containers.extend(self._container_stats(c) for c in self.state.containers(record.id))
        return message

    @answering
    def PodSandboxStats(
        self, request: api_pb2.PodSandboxStatsRequest, context: grpc.ServicerContext
    ) -> api_pb2.PodSandboxStatsResponse:
        record = self.record(request.pod_sandbox_id)
        return api_pb2.PodSandboxStatsResponse(stats=self._sandbox_stats(record))

    @answering
    def ListPodSandboxStats(
        self, request: api_pb2.ListPodSandboxStatsRequest, context: grpc.ServicerContext
    ) -> api_pb2.ListPodSandboxStatsResponse:
        wanted = request.filter
        found = [
            self._sandbox_stats(record)
            for record in self.state.sandboxes()
            if record.id.startswith(wanted.id) and stats.selected(record.labels, wanted.label_selector)
        ]
        return api_pb2.ListPodSandboxStatsResponse(stats=found)
