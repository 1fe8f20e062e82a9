"""The CRI RuntimeService: sandboxes (sandboxes.py) and containers (containers.py), the runtime's
own calls here, and the calls other parts own — streaming (cristream: stage0/cri/streaming/,
exec.py), logs and stats (crilog: logs.py, stats.py)"""

from __future__ import annotations

import os
import threading

import grpc

from stage0 import __version__
from stage0.cri import backend, warm
from stage0.cri.observe import Observing  # crilog's: logs, stats, resource updates
from stage0.cri.proto import api_pb2, api_pb2_grpc
from stage0.cri.state import State
from stage0.cri.status import answering, invalid
from stage0.cri.streaming.server import StreamingServer
from stage0.cri.streams import RuntimeStreams
from stage0.options import GlobalOptions

# where exec, attach and port-forward stream (kubelet proxies them: loopback is enough); port 0: any
STREAMING_ADDRESS = os.environ.get("NSPOD_CRI_STREAMING", "127.0.0.1:0")
RUNTIME_NAME = "nspod"
CRI_VERSION = "v1"  # the runtime API version kubelet checks
KUBELET_API = "0.1.0"  # VersionResponse.version: the kubelet runtime API's own version


class RuntimeService(Observing, api_pb2_grpc.RuntimeServiceServicer):
    def __init__(self, options: GlobalOptions) -> None:
        self.options = options
        self.state = State(options.dir)
        self.state.load()
        self._sandbox_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.streams = RuntimeStreams(self)
        host, _, port = STREAMING_ADDRESS.rpartition(":")
        self.streaming = StreamingServer(host.strip("[]"), int(port), self.streams)
        self.spares = warm.Spares(
            options, warm.plain_shape(options), lambda request: backend.run_sandbox(options, request)
        )

    def started(self) -> None:
        """The server listens: the streaming server starts too, and the spares' keeper."""
        self.streaming.start()
        self.spares.start()

    def stopped(self) -> None:
        """The server stopped answering."""
        self.streaming.stop()
        self.spares.stop()

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

    # cristream's: stage0/cri/streaming (StreamingServer) and stage0/cri/exec.py (exec_sync);
    # streams.py resolves the IDs for them
    @answering
    def ExecSync(
        self, request: api_pb2.ExecSyncRequest, context: grpc.ServicerContext
    ) -> api_pb2.ExecSyncResponse:
        from stage0.cri.exec import exec_sync

        if not request.cmd:
            raise invalid("ExecSync needs a command")
        where = self.streams.container(request.container_id)
        stdout, stderr, code = exec_sync(where.pod_dir, where.app, list(request.cmd), float(request.timeout))
        return api_pb2.ExecSyncResponse(stdout=stdout, stderr=stderr, exit_code=code)

    @answering
    def Exec(self, request: api_pb2.ExecRequest, context: grpc.ServicerContext) -> api_pb2.ExecResponse:
        self.streams.container(request.container_id)  # a clear NOT_FOUND or FAILED_PRECONDITION now
        return api_pb2.ExecResponse(url=self.streaming.exec_url(request))

    @answering
    def Attach(
        self, request: api_pb2.AttachRequest, context: grpc.ServicerContext
    ) -> api_pb2.AttachResponse:
        self.streams.container(request.container_id)
        return api_pb2.AttachResponse(url=self.streaming.attach_url(request))

    @answering
    def PortForward(
        self, request: api_pb2.PortForwardRequest, context: grpc.ServicerContext
    ) -> api_pb2.PortForwardResponse:
        self.streams.sandbox_netns(request.pod_sandbox_id)
        return api_pb2.PortForwardResponse(url=self.streaming.portforward_url(request))
