"""What a fetch may do (pull policies, insecure options, the platform of OCI images) and how a
stored image's labels answer a request: plain values shared by the appc and the OCI fetchers."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stage0.options import InsecureOption

if TYPE_CHECKING:
    pass


@dataclass(frozen=True, slots=True)
class Transfer:
    """How far a download is, as progress callbacks hear it. ``layers``: an OCI image's layers,
    streaming at once (``what`` its reference); else one file (``what`` its URL)."""

    what: str
    done: int  # bytes
    total: int | None
    finished: bool = False  # the last call for this download (also after a failure)
    layers: bool = False


Progress = Callable[[Transfer], None]


def _quiet(text: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Report:
    """What a long operation tells as it goes, to whoever called it (nothing by default: the CLI
    passes a writer to stderr, a server its own log)."""

    say: Callable[[str], None] = field(default=_quiet)  # one line: "Downloading 3 of 4 layers…"
    progress: Progress | None = None


QUIET = Report()


class PullPolicy(enum.StrEnum):
    NEVER = "never"  # the store only
    NEW = "new"  # the store first, fetch what is missing
    UPDATE = "update"  # ask the remote (honouring ETag and max-age)


@dataclass(frozen=True, slots=True)
class FetchOptions:
    insecure: frozenset[InsecureOption] = frozenset()
    trust_keys_from_https: bool = False
    pull_policy: PullPolicy = PullPolicy.UPDATE
    progress: Progress | None = None  # told as downloads stream (the CLI draws a line on a terminal)
    platform: str = ""  # of OCI images: OS/ARCH[/VARIANT]; "": this machine's
    # OCI images with no key trusted for their prefix: taken unverified (podman's default policy,
    # what CRI pulls follow) instead of refused (rkt's rule for the CLI)
    unsigned_without_key: bool = False

    def skips(self, option: InsecureOption) -> bool:
        return option in self.insecure


def labels_match(image: Mapping[str, str], asked: Mapping[str, str], defaults: Mapping[str, str]) -> bool:
    """Asked labels must be present with the same value; host defaults (os, arch) only when present."""
    if any(image.get(k) != v for k, v in asked.items()):
        return False
    return all(image.get(k, v) == v for k, v in defaults.items() if k not in asked)
