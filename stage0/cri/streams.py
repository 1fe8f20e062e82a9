"""What the streaming server (stage0/cri/streaming, cristream's) asks of the runtime: where a
container or a sandbox is now, resolved from the CRI's IDs through state.py and the pods."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from stage0.cri import backend
from stage0.cri.sandboxes import READY
from stage0.cri.status import Failure
from stage0.cri.streaming.backend import AttachIO, Container

if TYPE_CHECKING:
    from stage0.cri.runtime import RuntimeService


class RuntimeStreams:
    """The streaming server's Backend over the RuntimeService's records."""

    def __init__(self, runtime: RuntimeService) -> None:
        self.runtime = runtime

    def container(self, container_id: str) -> Container:
        record = self.runtime.container_record(container_id)
        pod = self.runtime.live_pod(record)
        state = backend.app_states(pod).get(record.app, {}).get("state") if pod else None
        if pod is None or state not in ("running", "starting"):
            raise Failure(grpc.StatusCode.FAILED_PRECONDITION, f"container {record.id} is not running")
        return Container(pod.path, record.app)

    def sandbox_netns(self, sandbox_id: str) -> str | None:
        record = self.runtime.record(sandbox_id)
        pod = self.runtime.pod_of(record)
        if pod is None or self.runtime.sandbox_state(record, pod) != READY:
            raise Failure(grpc.StatusCode.FAILED_PRECONDITION, f"pod sandbox {sandbox_id} is not ready")
        if record.host_network:
            return None
        from stage1.systemd import Systemd

        with Systemd() as host:
            leader = host.machine_leader(pod.machine() or f"nspod-{pod.uuid}")
        return f"/proc/{leader}/ns/net"

    def attach(self, container_id: str, io: AttachIO) -> None:
        self.container(container_id)
        raise Failure(
            grpc.StatusCode.UNIMPLEMENTED,
            "attach is not supported yet: a container's output is in its log ('crictl logs')",
        )
