"""The CRI RuntimeService: sandboxes (sandboxes.py) and containers (containers.py), the runtime's
own calls here, and the calls other parts own — streaming (cristream: stage0/cri/streaming/,
exec.py), logs and stats (crilog: logs.py, stats.py) — answering UNIMPLEMENTED until they land."""

from __future__ import annotations

import threading

import grpc

from stage0 import __version__
from stage0.cri.containers import Containers
from stage0.cri.proto import api_pb2, api_pb2_grpc
from stage0.cri.state import State
from stage0.cri.status import answering, unimplemented
from stage0.options import GlobalOptions

RUNTIME_NAME = "nspod"
CRI_VERSION = "v1"  # the runtime API version kubelet checks
KUBELET_API = "0.1.0"  # VersionResponse.version: the kubelet runtime API's own version


class RuntimeService(Containers, api_pb2_grpc.RuntimeServiceServicer):
    def __init__(self, options: GlobalOptions) -> None:
        self.options = options
        self.state = State(options.dir)
        self.state.load()
        self._sandbox_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def started(self) -> None:
        """The server listens (the streaming server starts here)."""

    def stopped(self) -> None:
        """The server stopped answering."""

    @answering
    def Version(
        self, request: api_pb2.VersionRequest, context: grpc.ServicerContext
    ) -> api_pb2.VersionResponse:
        return api_pb2.VersionResponse(
            version=KUBELET_API,
            runtime_name=RUNTIME_NAME,
            runtime_version=__version__,
            runtime_api_version=CRI_VERSION,
        )

    @answering
    def Status(
        self, request: api_pb2.StatusRequest, context: grpc.ServicerContext
    ) -> api_pb2.StatusResponse:
        conditions = [
            api_pb2.RuntimeCondition(type="RuntimeReady", status=True),
            api_pb2.RuntimeCondition(type="NetworkReady", status=True),
        ]
        return api_pb2.StatusResponse(status=api_pb2.RuntimeStatus(conditions=conditions))

    @answering
    def UpdateRuntimeConfig(
        self, request: api_pb2.UpdateRuntimeConfigRequest, context: grpc.ServicerContext
    ) -> api_pb2.UpdateRuntimeConfigResponse:
        # the pod CIDR: nspod's pods take their addresses from the CNI config kubelet shares
        return api_pb2.UpdateRuntimeConfigResponse()

    # cristream's: stage0/cri/streaming (StreamingServer) and stage0/cri/exec.py (exec_sync)
    @answering
    def ExecSync(
        self, request: api_pb2.ExecSyncRequest, context: grpc.ServicerContext
    ) -> api_pb2.ExecSyncResponse:
        raise unimplemented("ExecSync", "stage0/cri/exec.py")

    @answering
    def Exec(self, request: api_pb2.ExecRequest, context: grpc.ServicerContext) -> api_pb2.ExecResponse:
        raise unimplemented("Exec", "stage0/cri/streaming")

    @answering
    def Attach(
        self, request: api_pb2.AttachRequest, context: grpc.ServicerContext
    ) -> api_pb2.AttachResponse:
        raise unimplemented("Attach", "stage0/cri/streaming")

    @answering
    def PortForward(
        self, request: api_pb2.PortForwardRequest, context: grpc.ServicerContext
    ) -> api_pb2.PortForwardResponse:
        raise unimplemented("PortForward", "stage0/cri/streaming")

    # crilog's: stage0/cri/logs.py and stats.py
    @answering
    def ReopenContainerLog(
        self, request: api_pb2.ReopenContainerLogRequest, context: grpc.ServicerContext
    ) -> api_pb2.ReopenContainerLogResponse:
        raise unimplemented("ReopenContainerLog", "stage0/cri/logs.py")

    @answering
    def UpdateContainerResources(
        self, request: api_pb2.UpdateContainerResourcesRequest, context: grpc.ServicerContext
    ) -> api_pb2.UpdateContainerResourcesResponse:
        raise unimplemented("UpdateContainerResources", "stage0/cri/stats.py")

    @answering
    def ContainerStats(
        self, request: api_pb2.ContainerStatsRequest, context: grpc.ServicerContext
    ) -> api_pb2.ContainerStatsResponse:
        raise unimplemented("ContainerStats", "stage0/cri/stats.py")

    @answering
    def ListContainerStats(
        self, request: api_pb2.ListContainerStatsRequest, context: grpc.ServicerContext
    ) -> api_pb2.ListContainerStatsResponse:
        raise unimplemented("ListContainerStats", "stage0/cri/stats.py")

    @answering
    def PodSandboxStats(
        self, request: api_pb2.PodSandboxStatsRequest, context: grpc.ServicerContext
    ) -> api_pb2.PodSandboxStatsResponse:
        raise unimplemented("PodSandboxStats", "stage0/cri/stats.py")

    @answering
    def ListPodSandboxStats(
        self, request: api_pb2.ListPodSandboxStatsRequest, context: grpc.ServicerContext
    ) -> api_pb2.ListPodSandboxStatsResponse:
        raise unimplemented("ListPodSandboxStats", "stage0/cri/stats.py")
