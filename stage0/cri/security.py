"""The CRI's security contexts and resources as nspod requests (crisec's part: identity until then).

``pod_security`` gets the sandbox's config and the PodRequest translate.py made; ``container_security``
the container's, its sandbox's, the image's configuration and the AppRequest. Each returns the
request with what the security context and resources ask for.
"""

from __future__ import annotations

from typing import Any

from stage0.cri.proto import api_pb2
from stage0.requests import AppRequest, PodRequest


def pod_security(config: api_pb2.PodSandboxConfig, request: PodRequest) -> PodRequest:
    return request


def container_security(
    config: api_pb2.ContainerConfig, sandbox: api_pb2.PodSandboxConfig, image: Any, request: AppRequest
) -> AppRequest:
    return request
