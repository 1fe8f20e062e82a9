"""``port``: a pod's published ports (``--port``, a pod file's, the CRI's port mappings) as podman
prints them: ``80/tcp -> 0.0.0.0:8080``. Read from the pod's spec: what stage1 forwards."""

from __future__ import annotations

from stage0.errors import NotFoundError, UsageError
from stage1.abi import PortSpec

PROTOCOLS = ("tcp", "udp")


def parse_private(text: str) -> tuple[int, str | None]:
    """``80``, ``80/tcp`` → (80, "tcp"); UsageError otherwise (no protocol: either)."""
    number, _, protocol = text.partition("/")
    if not number.isdigit() or not 0 < int(number) < 65536 or (protocol and protocol not in PROTOCOLS):
        raise UsageError(f"bad port {text!r}", hint="give PORT or PORT/PROTO (tcp or udp), e.g. 80/tcp")
    return int(number), protocol or None


def host_side(port: PortSpec) -> str:
    """Where the host listens: any address reads 0.0.0.0 as podman shows it; IPv6 in brackets."""
    address = port.host_ip or "0.0.0.0"
    return f"[{address}]:{port.host_port}" if ":" in address else f"{address}:{port.host_port}"


def port_lines(ports: tuple[PortSpec, ...], private: str | None = None) -> list[str]:
    """Every published port (``80/tcp -> 0.0.0.0:8080``), or the host sides of one private port
    (NotFound when the pod publishes no such port)."""
    if private is None:
        return [f"{p.port}/{p.protocol} -> {host_side(p)}" for p in ports]
    number, protocol = parse_private(private)
    found = [host_side(p) for p in ports if p.port == number and protocol in (None, p.protocol)]
    if not found:
        raise NotFoundError(f"no public port for {private}", hint="'nspod port POD' lists what is published")
    return found
