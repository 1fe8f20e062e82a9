"""The hostile-ACI corpus (tests/unit/hostile.py) rebuilt as OCI layers, plus what only layers
have: whiteouts. Every one is refused by the layer extractor and nothing outside its directory
changes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stage0.errors import Error
from stage0.images.aci.compression import sniff
from stage0.images.aci.tarstream import Limits
from stage0.images.oci.layer import extract_layer
from stage0.images.tree import LayeredTree
from tests.unit import hostile
from tests.unit.test_hostile import snapshot

# an ACI's own structure: in a layer "manifest" and "rootfs" are any names, /etc/passwd any file
ACI_ONLY = {"duplicate-manifest", "hardlink-to-manifest", "manifest-is-a-symlink", "rootfs-is-a-file",
            "unexpected-top-level"}  # fmt: skip
LIMITS = Limits(max_bytes=32 << 20)


@pytest.fixture
def layers() -> Iterator[None]:
    hostile.LAYERS = True
    yield
    hostile.LAYERS = False


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "victim").write_text("precious\n")
    return out


def extract(data: bytes, root: Path) -> None:
    root.mkdir()
    kind = sniff(data[:512])
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    try:
        plain = gzip.decompress(data) if kind and kind.value == "gzip" else data
    except (OSError, EOFError):  # the extractor finds out for itself
        plain = data
    diff_id = "sha256:" + hashlib.sha256(plain).hexdigest()
    extract_layer(io.BytesIO(data), compression=str(kind.value if kind else "none"), root=str(root),
                  digest=digest, diff_id=diff_id, limits=LIMITS)  # fmt: skip


@pytest.mark.parametrize("name", sorted(set(hostile.CASES) - ACI_ONLY))
def test_the_hostile_corpus_as_layers_is_refused(
    name: str, tmp_path: Path, outside: Path, layers: None
) -> None:
    make, _ = hostile.CASES[name]
    before = snapshot(outside)
    with pytest.raises(Error):
        extract(make(outside), tmp_path / "layer")
    assert snapshot(outside) == before


def _tar(*members: tuple[str, bytes | None, str]) -> bytes:
    """(name, data, symlink target): a file, or with data None a directory or a symlink."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, target in members:
            info = tarfile.TarInfo(name)
            if data is not None:
                info.size = len(data)
            elif target:
                info.type, info.linkname = tarfile.SYMTYPE, target
            else:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


@pytest.mark.parametrize(
    "members",
    [
        [("../.wh.victim", b"", "")],
        [("d/../../.wh.victim", b"", "")],
        [("d/.wh...", b"", "")],
        [("d/.wh..", b"", "")],
        [("d/.wh.", b"", "")],
        [("link", None, "/"), ("link/.wh.etc", b"", "")],
        [("d", None, ""), ("d", None, "/tmp"), ("d/x", b"x", "")],
        [("d", None, "/tmp"), ("d/x", b"x", "")],
    ],
    ids=[
        "whiteout-above",
        "whiteout-climbing",
        "whiteout-dotdot",
        "whiteout-dot",
        "whiteout-empty",
        "whiteout-through-symlink",
        "dir-replaced-by-symlink",
        "write-through-symlink",
    ],
)
def test_whiteouts_and_symlinks_that_reach_out_are_refused(
    members: list[tuple[str, bytes | None, str]], tmp_path: Path, outside: Path
) -> None:
    before = snapshot(outside)
    with pytest.raises(Error):
        extract(_tar(*members), tmp_path / "layer")
    assert snapshot(outside) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts are device nodes: root makes them")
def test_a_symlink_in_a_lower_layer_is_never_written_through(tmp_path: Path, outside: Path) -> None:
    extract(_tar(("d", None, str(outside))), tmp_path / "lower")
    extract(_tar(("d/x", b"mine", "")), tmp_path / "upper")  # its own d/, in its own directory
    assert os.listdir(outside) == ["victim"] and (outside / "victim").read_text() == "precious\n"
    tree = LayeredTree((str(tmp_path / "upper"), str(tmp_path / "lower")))
    assert tree.resolve("/d/x") == str(tmp_path / "upper/d/x")
