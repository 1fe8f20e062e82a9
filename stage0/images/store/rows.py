"""The rows of the store's index (stage0/images/store/index.py) as values: images, their remote sources
and OCI layers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ImageRow:
    id: str
    name: str
    labels: Mapping[str, str]
    manifest: bytes
    compression: str
    size: int
    tree_size: int
    import_time: float
    last_used: float
    source: str
    signer: str | None
    latest: bool

    @property
    def is_oci(self) -> bool:
        """An OCI image: its layers in the layer store, its blob an OCI manifest (stage0/images/oci)."""
        return self.compression == "oci"

    @property
    def short_id(self) -> str:
        return self.id[: len("sha512-") + 32]


@dataclass(frozen=True, slots=True)
class RemoteRow:
    url: str
    image_id: str
    etag: str | None
    max_age: int
    download_time: float

    def fresh(self, now: float) -> bool:
        return self.download_time + self.max_age > now


COLUMNS = ", ".join(
    (
        "id",
        "name",
        "labels",
        "manifest",
        "compression",
        "size",
        "tree_size",
        "import_time",
        "last_used",
        "source",
        "signer",
        "latest",
    )
)


@dataclass(frozen=True, slots=True)
class LayerRow:
    diff_id: str
    digest: str
    size: int
    tree_size: int
    import_time: float


def image_row(row: tuple[object, ...]) -> ImageRow:
    values = list(row)
    values[2] = json.loads(str(values[2]))
    values[11] = bool(values[11])
    return ImageRow(*values)  # type: ignore[arg-type]
