"""podman's spellings of what a pod asks for, read into the requests rkt's flags make
(stage0/pods/requests.py, stage0/pods/network.py), so both paths plan the same pod:

    -v /HOST:/CONTAINER[:ro|rw]          a host volume, mounted into every app
    -p [IP:]HOSTPORT:PORT[/tcp|udp]      the app's port of that number (made up if the image has none)
    -u USER[:GROUP]                      every app's user (and group)

Each is pure: text in, request out, a one-line UsageError for anything else.
"""

from __future__ import annotations

import ipaddress
import re

from stage0.errors import UsageError
from stage0.pods.network import PortRequest
from stage1.abi import VolumeSpec

VOLUME_HINT = "-v /HOST/PATH:/PATH/IN/APP[:ro] (both absolute; rkt's NAME,kind=host,… also works)"
PUBLISH_HINT = "-p HOSTPORT:PORT[/tcp|udp] or -p HOSTIP:HOSTPORT:PORT (a host port is required)"
VOLUME_OPTIONS = {"ro": True, "rw": False}


def is_podman_volume(text: str) -> bool:
    """``-v``/``--volume`` in podman's form: rkt's always starts with a name and has ``kind=``."""
    return text.startswith("/") or (":" in text and "kind=" not in text)


def podman_volume(text: str, index: int) -> tuple[VolumeSpec, tuple[str, str, bool]]:
    """``/HOST:/CONTAINER[:ro|rw]`` → a host volume named ``vol-INDEX`` and its mount in every app."""
    source, _, rest = text.partition(":")
    target, _, options = rest.partition(":")
    if not source.startswith("/"):
        what = "a named volume" if source and "/" not in source else "a relative path"
        raise UsageError(
            f"bad -v {text!r}: {source!r} is {what}, not an absolute host path", hint=VOLUME_HINT
        )
    if not target.startswith("/"):
        raise UsageError(f"bad -v {text!r}: the path in the app must be absolute", hint=VOLUME_HINT)
    words = [w for w in options.split(",") if w]
    unknown = [w for w in words if w not in VOLUME_OPTIONS]
    if unknown or len(words) > 1:
        raise UsageError(
            f"bad -v {text!r}: options {options!r}",
            hint="ro or rw only (SELinux relabelling and propagation are not nspod's)",
        )
    read_only = VOLUME_OPTIONS[words[0]] if words else False
    name = f"vol-{index}"
    return VolumeSpec(name=name, kind="host", source=source, read_only=read_only), (name, target, read_only)


def split_volumes(
    texts: list[str],
) -> tuple[list[str], tuple[VolumeSpec, ...], tuple[tuple[str, str, bool], ...]]:
    """The --volume/-v values: rkt's left as they are, podman's made volumes and their mounts."""
    rkt: list[str] = []
    volumes: list[VolumeSpec] = []
    mounts: list[tuple[str, str, bool]] = []
    for text in texts:
        if is_podman_volume(text):
            volume, mount = podman_volume(text, len(volumes) + 1)
            volumes.append(volume)
            mounts.append(mount)
        else:
            rkt.append(text)
    return rkt, tuple(volumes), tuple(mounts)


def _port_number(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"bad -p {whole!r}: {text!r} is not a port (1-65535)", hint=PUBLISH_HINT)
    return int(text)


def parse_publish(text: str) -> PortRequest:
    """``[IP:]HOSTPORT:PORT[/PROTO]`` (``[::1]:8080:80`` for IPv6) → a forward by number."""
    rest, slash, protocol = text.partition("/")
    if slash and protocol not in ("tcp", "udp"):
        raise UsageError(f"bad -p {text!r}: protocol {protocol!r}", hint="tcp (the default) or udp")
    address, _, ports = rest.rpartition("]:") if rest.startswith("[") else ("", "", rest)
    fields = ports.split(":")
    if address:
        address = address.removeprefix("[")
    elif len(fields) == 3:
        address = fields.pop(0)
    if len(fields) != 2 or (address == "" and rest.startswith(":")):
        raise UsageError(f"bad -p {text!r}", hint=PUBLISH_HINT)
    host_port, port = (_port_number(f, text) for f in fields)
    if address:
        try:
            address = str(ipaddress.ip_address(address))
        except ValueError:
            raise UsageError(
                f"bad -p {text!r}: {address!r} is not an IP address", hint=PUBLISH_HINT
            ) from None
    # no name yet: port_specs gives it the app's port of that number, or makes one up
    return PortRequest("", host_port, address, port=port, protocol=protocol or "tcp")


def publish_text(port: PortRequest) -> str:
    """A forward by number as ``-p`` writes it (a pod file's ``publish``)."""
    address = f"[{port.host_ip}]:" if ":" in port.host_ip else f"{port.host_ip}:" if port.host_ip else ""
    return f"{address}{port.host_port}:{port.port}/{port.protocol}"


def split_user(text: str) -> tuple[str, str | None]:
    """``-u USER[:GROUP]`` (names or numbers, resolved in the image) → user and group."""
    user, colon, group = text.partition(":")
    if not re.fullmatch(r"[^:\s]+", user) or (colon and not re.fullmatch(r"[^:\s]+", group)):
        raise UsageError(f"bad -u {text!r}", hint="-u USER or -u USER:GROUP (names or numbers)")
    return user, group if colon else None
