"""The CRI streaming server (Exec, Attach, PortForward over SPDY/3.1): ``frames`` is the wire
format, ``session`` one connection's streams, ``remotecommand`` and ``portforward`` Kubernetes'
protocols on them, ``server`` the HTTP front with its tokens, ``backend`` what the runtime gives."""

from stage0.cri.streaming.backend import AttachIO, Backend, Container
from stage0.cri.streaming.server import StreamingServer

__all__ = ["AttachIO", "Backend", "Container", "StreamingServer"]
