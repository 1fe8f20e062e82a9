"""The CRI RuntimeService: sandboxes (sandboxes.py) and containers (containers.py), the runtime's
own calls here, and the calls other parts own — streaming (cristream: stage0/cri/streaming/,
exec.py, streams.py), logs and stats (crilog: logs.py, stats.py)."""

from __future__ import annotations

import threading

import grpc

from stage0 import __version__
from stage0.cri import warm
from stage0.cri.observe import Observing  # crilog's: logs, stats, resource updates
from stage0.cri.proto import api_pb2, api_pb2_grpc
from stage0.cri.state import State
from stage0.cri.status import answering
from stage0.cri.streams import Streaming  # cristream's: exec, attach, port-forward
from stage0.options import GlobalOptions

RUNTIME_NAME = "nspod"
CRI_VERSION = "v1"  # the runtime API version kubelet checks
KUBELET_API = "0.1.0"  # VersionResponse.version: the kubelet runtime API's own version


class RuntimeService(Observing, Streaming, api_pb2_grpc.RuntimeServiceServicer):
    def __init__(self, options: GlobalOptions) -> None:
        self.options = options
        self.state = State(options.dir)
        self.state.load()
        self._sandbox_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.spares = warm.Spares(options)

    def started(self) -> None:
        """The server listens: the streaming server starts, and the spares' keeper."""
        self.start_streaming()
        self.spares.start()

    def stopped(self) -> None:
        """The server stopped answering."""
        self.stop_streaming()
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
