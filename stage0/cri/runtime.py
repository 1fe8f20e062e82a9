"""The CRI RuntimeService: sandboxes and containers, each call a thin translation to the backend."""

from __future__ import annotations

import grpc

from stage0 import __version__
from stage0.cri.proto import api_pb2, api_pb2_grpc
from stage0.cri.state import State
from stage0.cri.status import answering
from stage0.options import GlobalOptions

RUNTIME_NAME = "nspod"
CRI_VERSION = "v1"  # the runtime API version kubelet checks


class RuntimeService(api_pb2_grpc.RuntimeServiceServicer):
    def __init__(self, options: GlobalOptions) -> None:
        self.options = options
        self.state = State(options.dir)
        self.state.load()

    def started(self) -> None:
        """The server listens (streaming servers and the like start here)."""

    def stopped(self) -> None:
        """The server stopped answering."""

    @answering
    def Version(
        self, request: api_pb2.VersionRequest, context: grpc.ServicerContext
    ) -> api_pb2.VersionResponse:
        return api_pb2.VersionResponse(
            version="0.1.0",
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
        return api_pb2.UpdateRuntimeConfigResponse()
