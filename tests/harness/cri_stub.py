"""A small CRI RuntimeService for the streaming tests: it answers Exec, Attach and PortForward
with the streaming server's URLs and ExecSync with a function given, so the real crictl can be
pointed at nspod's streaming code before (or without) the whole CRI service."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from stage0.cri.proto import api_pb2, api_pb2_grpc
from stage0.cri.streaming import AttachIO, Container, StreamingServer
from stage0.errors import Error

ExecSync = Callable[[str, list[str], float], tuple[bytes, bytes, int]]


class Servicer(api_pb2_grpc.RuntimeServiceServicer):
    def __init__(self, streaming: StreamingServer, exec_sync: ExecSync) -> None:
        self.streaming, self.exec_sync = streaming, exec_sync

    def Version(self, request: Any, context: Any) -> Any:
        return api_pb2.VersionResponse(version="0.1.0", runtime_name="nspod-stub", runtime_api_version="v1")

    def Exec(self, request: Any, context: Any) -> Any:
        return api_pb2.ExecResponse(url=self._url(context, self.streaming.exec_url, request))

    def Attach(self, request: Any, context: Any) -> Any:
        return api_pb2.AttachResponse(url=self._url(context, self.streaming.attach_url, request))

    def PortForward(self, request: Any, context: Any) -> Any:
        return api_pb2.PortForwardResponse(url=self._url(context, self.streaming.portforward_url, request))

    def ExecSync(self, request: Any, context: Any) -> Any:
        from stage0.cri.exec import ExecTimeout

        try:
            out, err, code = self.exec_sync(request.container_id, list(request.cmd), float(request.timeout))
        except ExecTimeout as error:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(error))
        except Error as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return api_pb2.ExecSyncResponse(stdout=out, stderr=err, exit_code=code)

    @staticmethod
    def _url(context: Any, make: Callable[[Any], str], request: Any) -> str:
        try:
            return make(request)
        except Error as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            raise  # not reached: abort raises


def serve(socket_path: str, streaming: StreamingServer, exec_sync: ExecSync) -> grpc.Server:
    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    api_pb2_grpc.add_RuntimeServiceServicer_to_server(Servicer(streaming, exec_sync), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"unix://{socket_path}")
    server.start()
    return server


class HostBackend:
    """Containers that are host processes: exec runs on the host, attach relays a ``sh`` started
    for the container, port-forward connects on the host (a host-network sandbox)."""

    def __init__(self) -> None:
        self.shells: dict[str, subprocess.Popen[bytes]] = {}

    def container(self, container_id: str) -> Container:
        if container_id.startswith("missing"):
            raise Error(f"container {container_id} is not running", hint="start it first")
        return Container("/nonexistent", container_id)

    def sandbox_netns(self, sandbox_id: str) -> str | None:
        return None

    def attach(self, container_id: str, io: AttachIO) -> None:
        shell = self.shells[container_id]
        assert shell.stdin is not None and shell.stdout is not None

        def out() -> None:
            while data := os.read(shell.stdout.fileno(), 65536):  # type: ignore[union-attr]
                if io.stdout is not None:
                    io.stdout.write(data)

        reader = threading.Thread(target=out, daemon=True)
        reader.start()
        if io.stdin is not None:  # the client's input ends the shell's (a container's StdinOnce)
            while data := io.stdin.read(65536):
                shell.stdin.write(data)
                shell.stdin.flush()
            shell.stdin.close()
        reader.join()
