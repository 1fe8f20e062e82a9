"""The runtime's side of exec, attach and port-forward: the streaming server's backend
(stage0/cri/streaming/backend.py) over the CRI's records, and the four RuntimeService calls that
hand out its URLs and run ExecSync. runtime.py mixes ``Streaming`` in."""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc

from stage0.api.views import AppState
from stage0.cri.lookup import LIVE, find_view, live_apps, running
from stage0.cri.proto import api_pb2
from stage0.cri.state import State
from stage0.cri.status import Failure, answering, not_found
from stage0.cri.streaming import AttachIO, Container, StreamingServer
from stage0.host.executor import machine_leader
from stage0.options import GlobalOptions

log = logging.getLogger("nspod.cri")
STREAM_HOST = "127.0.0.1"  # kubelet reaches the runtime's URLs on the node itself (as containerd's default)
START_GRACE = 5.0  # seconds a just-started container may still read "created"


class Streams:
    """The Backend the streaming server calls: IDs to where the container or sandbox runs now."""

    def __init__(self, options: GlobalOptions, state: State) -> None:
        self.options, self.state = options, state

    def container(self, container_id: str) -> Container:
        record = self.state.container(container_id)
        if record is None:
            raise not_found("container", container_id)
        deadline = time.monotonic() + START_GRACE
        while running(pod := find_view(self.options, record.sandbox_id)) and pod is not None:
            seen = live_apps(self.options, pod).get(record.app)
            if seen is not None and seen.state in LIVE:
                return Container(pod.path, record.app)
            if seen is None or seen.state is not AppState.CREATED or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # StartContainer answered before the pod's systemd began the unit
        raise Failure(grpc.StatusCode.FAILED_PRECONDITION, f"container {record.id[:13]} is not running")

    def sandbox_netns(self, sandbox_id: str) -> str | None:
        record = self.state.sandbox(sandbox_id)
        if record is None:
            raise not_found("sandbox", sandbox_id)
        if record.host_network:
            return None
        pod = find_view(self.options, record.id)
        if pod is None or not running(pod) or not pod.machine:
            raise Failure(grpc.StatusCode.FAILED_PRECONDITION, f"sandbox {record.id} is not running")
        # the pod's systemd lives in the pod's network namespace
        return f"/proc/{machine_leader(pod.machine)}/ns/net"

    def attach(self, container_id: str, io: AttachIO) -> None:
        from stage0.cri.attach import connect, relay

        found = self.container(container_id)
        pod = find_view(self.options, self.state.container(container_id).sandbox_id)  # type: ignore[union-attr]
        if pod is None or not pod.machine:
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION, f"container {container_id[:13]} is not running"
            )
        relay(connect(machine_leader(pod.machine), found.app), io)


class Streaming:
    """RuntimeService's ExecSync, Exec, Attach and PortForward (mixed into runtime.py's class)."""

    options: GlobalOptions
    state: State
    streaming: StreamingServer | None = None

    def start_streaming(self) -> None:
        self.streaming = StreamingServer(STREAM_HOST, 0, Streams(self.options, self.state))
        self.streaming.start()
        log.info("streaming server on %s:%d", STREAM_HOST, self.streaming.port)

    def stop_streaming(self) -> None:
        if self.streaming is not None:
            self.streaming.stop()

    def _server(self) -> StreamingServer:
        if self.streaming is None:
            raise Failure(grpc.StatusCode.UNAVAILABLE, "the streaming server is not running")
        return self.streaming

    @answering
    def ExecSync(self, request: api_pb2.ExecSyncRequest, context: grpc.ServicerContext) -> Any:
        from stage0.cri.exec import exec_sync

        if not request.cmd:
            raise Failure(grpc.StatusCode.INVALID_ARGUMENT, "ExecSync needs a command")
        found = self._server().backend.container(request.container_id)
        out, err, code = exec_sync(found.pod_dir, found.app, list(request.cmd), float(request.timeout))
        return api_pb2.ExecSyncResponse(stdout=out, stderr=err, exit_code=code)

    @answering
    def Exec(self, request: api_pb2.ExecRequest, context: grpc.ServicerContext) -> Any:
        self._server().backend.container(request.container_id)  # NOT_FOUND now, not at connection
        return api_pb2.ExecResponse(url=self._server().exec_url(request))

    @answering
    def Attach(self, request: api_pb2.AttachRequest, context: grpc.ServicerContext) -> Any:
        self._server().backend.container(request.container_id)
        return api_pb2.AttachResponse(url=self._server().attach_url(request))

    @answering
    def PortForward(self, request: api_pb2.PortForwardRequest, context: grpc.ServicerContext) -> Any:
        if self.state.sandbox(request.pod_sandbox_id) is None:
            raise not_found("sandbox", request.pod_sandbox_id)
        return api_pb2.PortForwardResponse(url=self._server().portforward_url(request))
