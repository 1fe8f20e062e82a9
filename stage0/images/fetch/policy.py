"""What a fetch may do (pull policies, insecure options, the platform of OCI images) and how a
stored image's labels answer a request: plain values shared by the appc and the OCI fetchers."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from stage0.options import InsecureOption


class PullPolicy(enum.StrEnum):
    NEVER = "never"  # the store only
    NEW = "new"  # the store first, fetch what is missing
    UPDATE = "update"  # ask the remote (honouring ETag and max-age)


@dataclass(frozen=True, slots=True)
class FetchOptions:
    insecure: frozenset[InsecureOption] = frozenset()
    trust_keys_from_https: bool = False
    pull_policy: PullPolicy = PullPolicy.UPDATE
    progress: bool = False
    platform: str = ""  # of OCI images: OS/ARCH[/VARIANT]; "": this machine's

    def skips(self, option: InsecureOption) -> bool:
        return option in self.insecure


def labels_match(image: Mapping[str, str], asked: Mapping[str, str], defaults: Mapping[str, str]) -> bool:
    """Asked labels must be present with the same value; host defaults (os, arch) only when present."""
    if any(image.get(k) != v for k, v in asked.items()):
        return False
    return all(image.get(k, v) == v for k, v in defaults.items() if k not in asked)
