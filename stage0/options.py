"""Global options shared by every verb (rkt's global flags), parsed into a frozen value."""

from __future__ import annotations

import argparse
import enum
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class InsecureOption(enum.StrEnum):
    """Checks a user may switch off with ``--insecure-options`` (rkt's meanings)."""

    NONE = "none"
    IMAGE = "image"  # skip signature verification
    TLS = "tls"  # accept any TLS certificate and host name
    HTTP = "http"  # allow plain HTTP
    PUBKEY = "pubkey"  # allow fetching public keys over insecure transports
    ONDISK = "ondisk"  # accepted for compatibility; nothing to skip
    CAPABILITIES = "capabilities"
    PATHS = "paths"
    SECCOMP = "seccomp"
    NAMESPACES = "namespaces"  # let apps make namespaces (user namespaces above all)
    ALL_FETCH = "all-fetch"
    ALL_RUN = "all-run"
    ALL = "all"

    def expand(self) -> frozenset[InsecureOption]:
        """The concrete options this value stands for (``all-fetch`` → image, tls, http, pubkey)."""
        fetch = {InsecureOption.IMAGE, InsecureOption.TLS, InsecureOption.HTTP, InsecureOption.PUBKEY}
        run = {InsecureOption.CAPABILITIES, InsecureOption.PATHS, InsecureOption.SECCOMP,
               InsecureOption.NAMESPACES}  # fmt: skip
        match self:
            case InsecureOption.NONE:
                return frozenset()
            case InsecureOption.ALL_FETCH:
                return frozenset(fetch)
            case InsecureOption.ALL_RUN:
                return frozenset(run)
            case InsecureOption.ALL:
                return frozenset(fetch | run | {InsecureOption.ONDISK})
            case _:
                return frozenset({self})


def parse_insecure_options(text: str) -> frozenset[InsecureOption]:
    """``"image,tls"`` → {IMAGE, TLS}; an unknown word is a usage error (exit 2)."""
    result: set[InsecureOption] = set()
    for word in filter(None, (w.strip() for w in text.split(","))):
        try:
            result |= InsecureOption(word).expand()
        except ValueError:
            known = ", ".join(o.value for o in InsecureOption)
            raise argparse.ArgumentTypeError(f"unknown insecure option {word!r} (known: {known})") from None
    return frozenset(result)


@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalOptions:
    dir: str = "/var/lib/nspod"
    local_config: str = "/etc/nspod"
    system_config: str = "/usr/lib/nspod"
    debug: bool = False
    insecure: frozenset[InsecureOption] = frozenset()
    trust_keys_from_https: bool = False
    platform: str = ""  # OS/ARCH[/VARIANT] of OCI images to fetch; "": this machine's
    # stage1 as an external command (its argv before VERB POD_DIR ARGS…), or "fly"; empty: the
    # built-in nspawn flavor, run in this process (stage0/host/executor.py, stage0/pods/flavor.py)
    stage1: str = os.environ.get("NSPOD_STAGE1", "")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> GlobalOptions:
        """Raises UsageError for a --stage1 that is no flavor nor an absolute path (pods/flavor.py)."""
        from stage0.pods.flavor import parse

        return cls(
            dir=os.path.abspath(args.dir),
            local_config=os.path.abspath(args.local_config),
            system_config=os.path.abspath(args.system_config),
            debug=args.debug,
            insecure=args.insecure_options | getattr(args, AFTER_VERB, frozenset()),
            trust_keys_from_https=args.trust_keys_from_https,
            platform=args.platform,
            stage1=parse(args.stage1),
        )

    @property
    def config_dirs(self) -> tuple[str, ...]:
        """The configuration directories, the system's first: later ones win."""
        return (self.system_config, self.local_config)

    def allows(self, option: InsecureOption) -> bool:
        return option in self.insecure

    def conf(self, section: str, key: str, default: T, valid: Callable[[object], bool], hint: str) -> T:
        """``[section] key`` of nspod.conf, the local configuration's over the system's, else
        ``default``. A file TOML cannot read, or a value ``valid`` refuses, is an error naming the
        file (``hint``: how the setting is written)."""
        import tomllib

        from stage0.errors import InvalidArgumentError

        value: object = default
        for directory in self.config_dirs:
            path = os.path.join(directory, "nspod.conf")
            try:
                with open(path, "rb") as file:
                    found = tomllib.load(file).get(section, {})
                    value = found.get(key, value) if isinstance(found, dict) else found
            except FileNotFoundError:
                continue
            except tomllib.TOMLDecodeError as error:
                raise InvalidArgumentError(f"{path}: {error}", hint=hint) from None
            if not valid(value):
                raise InvalidArgumentError(f"{path}: [{section}] {key} = {value!r} is not valid", hint=hint)
        return value  # type: ignore[return-value]  # valid said it is a T


AFTER_VERB = "insecure_options_after_verb"  # its own dest: a subparser's default would hide the global


def add_insecure_after_verb(parser: argparse.ArgumentParser) -> None:
    """``--insecure-options`` after a verb that fetches or runs (``nspod run --insecure-options=…``,
    as rkt takes it): the same words, added to the global flag's."""
    parser.add_argument(
        "--insecure-options",
        dest=AFTER_VERB,
        type=parse_insecure_options,
        default=frozenset(),
        metavar="OPTS",
        help="as the global --insecure-options (the words add up)",
    )


def add_global_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = GlobalOptions()
    parser.add_argument("--dir", default=defaults.dir, help="nspod data directory (default: %(default)s)")
    parser.add_argument(
        "--local-config",
        default=defaults.local_config,
        help="local configuration directory (default: %(default)s)",
    )
    parser.add_argument(
        "--system-config",
        default=defaults.system_config,
        help="system configuration directory (default: %(default)s)",
    )
    parser.add_argument("--debug", action="store_true", help="print debug output and tracebacks to stderr")
    parser.add_argument(
        "--insecure-options",
        type=parse_insecure_options,
        default=frozenset(),
        metavar="OPTS",
        help="comma list of checks to skip: none, image, tls, http, pubkey, "
        "ondisk, capabilities, paths, seccomp, namespaces, all-fetch, all-run, all",
    )
    parser.add_argument(
        "--stage1",
        default=defaults.stage1,
        metavar="FLAVOR|PATH",
        help="the stage1 new pods get: nspawn (the default), fly (no isolation, needs "
        "--insecure-options=all-run), kvm, or a third-party stage1's absolute path (default: $NSPOD_STAGE1)",
    )
    parser.add_argument(
        "--platform",
        default="",
        metavar="OS/ARCH[/VARIANT]",
        help="the variant of a multi-platform OCI image to fetch (default: this machine's)",
    )
    parser.add_argument(
        "--trust-keys-from-https",
        action="store_true",
        help="trust the keys image discovery offers over HTTPS, without asking",
    )
