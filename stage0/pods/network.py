"""The pod's networks and forwarded ports as the user asks for them (rkt's ``--net`` and ``--port``).

    --net=default            (or no --net) a namespace of its own on the built-in ``default`` net
    --net=default-restricted reaches the host only: no masquerading, no default route
    --net=NAME[:CNI_ARGS]    a net from net.d (``K=V;K=V`` goes to its plugin as CNI_ARGS)
    --net=all                every configured net;  --net=none: loopback only;  --net=host: the host's
    --port=NAME:[HOSTIP:]HOSTPORT   an app's port (the image's name for it), forwarded from the host

Nets are CNI network configurations (one plugin each, ``*.conf``) in ``net.d/`` of the system and
then the local config directory (``/usr/lib/nspod/net.d``, ``/etc/nspod/net.d``); a later file with
a net's name replaces the earlier one, the built-ins' too. The built-ins are rkt's: ptp links with
host-local addresses from ``172.16.28.0/24`` (``default``) and ``172.31.0.0/16``
(``default-restricted``), leases kept in /run (a reboot ends every pod anyway).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import ipaddress
import json
import os
from dataclasses import dataclass

from stage0.errors import Error, ErrorKind, UsageError
from stage1.abi import NetworkSpec, PortSpec

IPAM_DIR = "/run/nspod/net/ipam"
DEFAULT, RESTRICTED = "default", "default-restricted"
BUILTIN = {
    DEFAULT: {
        "cniVersion": "1.0.0",
        "name": DEFAULT,
        "type": "ptp",
        "ipMasq": True,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "172.16.28.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": IPAM_DIR,
        },
    },
    RESTRICTED: {
        "cniVersion": "1.0.0",
        "name": RESTRICTED,
        "type": "ptp",
        "ipMasq": False,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "172.31.0.0/16"}]], "dataDir": IPAM_DIR},
    },
}
MODES = ("host", "none", "all")


class NetConfigError(Error):
    kind = ErrorKind.INVALID_ARGUMENT
    hint = "a net.d file is one CNI network configuration: a JSON object with 'name' and 'type'"


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("network (default: a namespace of the pod's own on the default net)")
    group.add_argument(
        "--net",
        action="append",
        default=[],
        metavar="NAME[:ARGS]|host|none|all",
        help="the nets the pod joins (interfaces eth0, eth1, …)",
    )
    group.add_argument(
        "--port", action="append", default=[], metavar="NAME:[HOSTIP:]HOSTPORT", help="forward an app's port"
    )
    group.add_argument(
        "--mds-register",
        action=argparse.BooleanOptionalAction,
        help="register with the metadata service (AC_METADATA_URL), or fail; --no-mds-register: never; "
        "default: where nspod-metadata-register.socket listens",
    )


def net_words(values: list[str]) -> tuple[str, ...]:
    """The --net flags as words (``a,b:ARGS`` and repeated flags alike), checked for their shape."""
    words = tuple(word for value in values for word in value.split(",") if word)
    names = [w.partition(":")[0] for w in words]
    if len(set(names)) != len(names):
        raise UsageError("a net is named twice in --net", hint="name each net once")
    for mode in ("host", "none", "all"):
        if mode in names and len(names) > 1:
            raise UsageError(f"--net={mode} stands alone", hint="or name the nets to join")
    for word in words:
        name, colon, args = word.partition(":")
        if name in MODES and colon:
            raise UsageError(f"--net={name} takes no CNI_ARGS", hint="NAME:K=V;K=V is for a named net")
        if colon and not all("=" in a for a in args.split(";")):
            raise UsageError(f"bad CNI_ARGS in --net={word}", hint="--net=NAME:KEY=VALUE;KEY=VALUE")
    return words


def load_nets(config_dirs: list[str]) -> dict[str, str]:
    """Each configured net's name and its configuration (JSON text): the built-ins, then each
    directory's ``net.d/*.conf`` in name order, later ones replacing earlier ones of the same name."""
    nets = {name: json.dumps(config) for name, config in BUILTIN.items()}
    for directory in config_dirs:
        for path in sorted(glob.glob(os.path.join(directory, "net.d", "*.conf"))):
            try:
                with open(path) as file:
                    config = json.load(file)
            except (OSError, ValueError) as error:
                raise NetConfigError(f"{path}: cannot read it as JSON: {error}") from None
            if not isinstance(config, dict) or not all(
                isinstance(config.get(k), str) and config[k] for k in ("name", "type")
            ):
                raise NetConfigError(f"{path}: no 'name' or 'type'")
            nets[config["name"]] = json.dumps(config)
    return nets


def networks(words: tuple[str, ...], nets: dict[str, str]) -> tuple[NetworkSpec, ...] | None:
    """The nets a pod joins, in the order given (``all``: by name); None for --net=host."""
    if words == ("host",):
        return None
    if words == ("none",):
        return ()
    if words == ("all",):
        return tuple(NetworkSpec(name=n, config=nets[n]) for n in sorted(nets))
    chosen = []
    for word in words or (DEFAULT,):
        name, _, args = word.partition(":")
        if name not in nets:
            raise UsageError(
                f"no net named {name!r}",
                hint=f"nets: {', '.join(sorted(nets))}, host, none, all (add one in /etc/nspod/net.d)",
            )
        chosen.append(NetworkSpec(name=name, config=nets[name], args=args))
    return tuple(chosen)


@dataclass(frozen=True, slots=True)
class PortRequest:
    """``--port=NAME:[HOSTIP:]HOSTPORT``: the app port called NAME, from this host port."""

    name: str
    host_port: int
    host_ip: str = ""
    # a port by number (the CRI's port mappings, a sandbox's, made before any app offers one):
    # forwarded as is, without a named app port
    port: int | None = None
    protocol: str = "tcp"

    def flag(self) -> str:
        address = f"[{self.host_ip}]:" if ":" in self.host_ip else f"{self.host_ip}:" if self.host_ip else ""
        return f"{self.name}:{address}{self.host_port}"


def parse_port(text: str) -> PortRequest:
    name, colon, rest = text.partition(":")
    address, _, number = rest.rpartition(":")
    address = address.removeprefix("[").removesuffix("]")
    hint = "--port=NAME:HOSTPORT or --port=NAME:HOSTIP:HOSTPORT (NAME: the image's name for the port)"
    if not name or not colon or not number.isdigit() or not 0 < int(number) < 65536:
        raise UsageError(f"bad --port {text!r}", hint=hint)
    if address:
        try:
            address = str(ipaddress.ip_address(address))
        except ValueError:
            raise UsageError(f"bad --port {text!r}: {address!r} is not an IP address", hint=hint) from None
    return PortRequest(name, int(number), address)


def port_specs(
    ports: tuple[PortRequest, ...], offered: dict[str, tuple[str, int]], nets: tuple[NetworkSpec, ...] | None
) -> tuple[PortSpec, ...]:
    """Each --port resolved to the app port of that name (``offered``: protocol and number by name)."""
    if ports and not nets:
        raise UsageError(
            "--port forwards to the pod's own network, and this pod has none",
            hint="drop --net=host or --net=none to forward ports",
        )
    specs: list[PortSpec] = []
    for asked in ports:
        if asked.port is not None and not asked.name:  # podman's -p: by number
            asked = by_number(asked, offered, {s.name for s in specs})
        if asked.port is not None:
            offered = {**offered, asked.name: (asked.protocol, asked.port)}
        if asked.name not in offered:
            raise UsageError(
                f"no app has a port named {asked.name!r}",
                hint=f"ports: {', '.join(sorted(offered)) or 'none'} (see 'nspod image cat-manifest')",
            )
        protocol, number = offered[asked.name]
        if any((s.protocol, s.host_port) == (protocol, asked.host_port) for s in specs):
            raise UsageError(
                f"host port {asked.host_port}/{protocol} is forwarded twice", hint="one app per port"
            )
        specs.append(
            PortSpec(
                name=asked.name,
                protocol=protocol,
                port=number,
                host_port=asked.host_port,
                host_ip=asked.host_ip,
            )
        )
    return tuple(specs)


def by_number(asked: PortRequest, offered: dict[str, tuple[str, int]], taken: set[str]) -> PortRequest:
    """A forward by number named for the app's port of that number and protocol, else for itself
    (``tcp-80``: as the CRI's, a port the image does not declare is forwarded all the same); a port
    forwarded again, from another host port, gets the CRI's name (``tcp-80-8081``): names are unique."""
    assert asked.port is not None
    wanted = (asked.protocol, asked.port)
    name = next((n for n, p in sorted(offered.items()) if p == wanted), f"{asked.protocol}-{asked.port}")
    if name in taken:
        name = f"{asked.protocol}-{asked.port}-{asked.host_port}"
    return dataclasses.replace(asked, name=name)
