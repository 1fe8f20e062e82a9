"""ACIs built by nspod: actool accepts them, the ID is sha512sum of the decompressed tar, builds repeat."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stage0.images.aci.build import build_aci
from stage0.images.aci.compression import Compression
from tests.conftest import run_nspod

DECOMPRESS = {"gzip": ["gzip", "-dc"], "xz": ["xz", "-dc"], "zstd": ["zstd", "-qdc"], "none": ["cat"]}


def sha512_of_tar(aci: Path, compression: str) -> str:
    """The reference ID: the distribution's decompressor piped into sha512sum."""
    pipeline = f"{' '.join(DECOMPRESS[compression])} {aci} | sha512sum"
    out = subprocess.run(["sh", "-c", pipeline], capture_output=True, text=True, check=True).stdout
    return "sha512-" + out.split()[0]


@pytest.mark.oracle
@pytest.mark.parametrize("compression", ["gzip", "xz", "zstd", "none"])
def test_built_aci_passes_actool(compression: str, layout: Path, tmp_path: Path, actool: Path) -> None:
    aci = tmp_path / f"hello-{compression}.aci"
    result = run_nspod("image", "build", "--compression", compression, str(layout), str(aci))
    assert result.returncode == 0, result.stderr
    image_id = result.stdout.strip()
    assert image_id == sha512_of_tar(aci, compression)
    target = aci
    if compression == "zstd":  # appc knows gzip, bzip2 and xz; actool checks the tar inside
        target = tmp_path / "hello-zstd.tar.aci"
        subprocess.run(["zstd", "-qdf", str(aci), "-o", str(target)], check=True)
    checked = subprocess.run(
        [str(actool), "--debug", "validate", str(target)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert "valid app container image" in checked.stderr
    validated = run_nspod("image", "validate", str(aci))
    assert validated.returncode == 0 and image_id in validated.stdout


@pytest.mark.parametrize(
    "compression", [Compression.GZIP, Compression.XZ, Compression.ZSTD, Compression.NONE]
)
def test_build_is_reproducible(compression: Compression, layout: Path, tmp_path: Path) -> None:
    first = build_aci(str(layout), str(tmp_path / "a.aci"), compression=compression)
    second = build_aci(str(layout), str(tmp_path / "b.aci"), compression=compression)
    assert first == second
    assert (tmp_path / "a.aci").read_bytes() == (tmp_path / "b.aci").read_bytes()


def test_same_id_whatever_the_compression(layout: Path, tmp_path: Path) -> None:
    ids = {
        build_aci(str(layout), str(tmp_path / f"{c}.aci"), compression=c)
        for c in (Compression.GZIP, Compression.XZ, Compression.ZSTD, Compression.NONE)
    }
    assert len(ids) == 1


def test_owner_root_and_archive_contents(layout: Path, tmp_path: Path) -> None:
    import tarfile

    aci = tmp_path / "root.aci"
    build_aci(str(layout), str(aci), owner_root=True)
    with tarfile.open(aci) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0] == "manifest" and names[1] == "rootfs"
    assert names[2:] == sorted(names[2:], key=lambda n: n.split("/"))  # depth-first, sorted
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "root", "root")}
    by_name = {m.name: m for m in members}
    assert by_name["rootfs/bin/greet"].issym() and by_name["rootfs/bin/greet"].linkname == "hello"
    linked = [by_name["rootfs/bin/hello"], by_name["rootfs/bin/hello-again"]]
    assert sum(m.islnk() for m in linked) == 1  # the second name of the file is a hard link
    assert by_name["rootfs/bin/hello"].mode & 0o777 == 0o755


def test_xattrs_are_kept(layout: Path, tmp_path: Path) -> None:
    import os
    import tarfile

    target = layout / "rootfs/etc/hostname"
    try:
        os.setxattr(target, "user.nspod.test", b"kept")
    except OSError:
        pytest.skip("file system without user xattrs")
    aci = tmp_path / "x.aci"
    build_aci(str(layout), str(aci))
    with tarfile.open(aci) as tar:
        info = tar.getmember("rootfs/etc/hostname")
    assert info.pax_headers["SCHILY.xattr.user.nspod.test"] == "kept"


def test_build_refuses_bad_output_and_leaves_nothing(layout: Path, tmp_path: Path) -> None:
    result = run_nspod("image", "build", str(layout), str(tmp_path / "out.tar"))
    assert result.returncode == 254 and "must end in .aci" in result.stderr
    existing = tmp_path / "exists.aci"
    existing.write_text("keep me")
    result = run_nspod("image", "build", str(layout), str(existing))
    assert result.returncode == 254 and "--overwrite" in result.stderr
    assert existing.read_text() == "keep me"
    (layout / "manifest").write_text("{}")
    result = run_nspod("image", "build", str(layout), str(tmp_path / "new.aci"))
    assert result.returncode == 254 and "/acKind" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.aci", "layout"]


def test_cat_manifest(layout: Path, tmp_path: Path) -> None:
    aci = tmp_path / "m.aci"
    build_aci(str(layout), str(aci), compression=Compression.XZ)
    result = run_nspod("image", "cat-manifest", str(aci))
    assert result.returncode == 0
    assert result.stdout == (layout / "manifest").read_text() + "\n"
    pretty = run_nspod("image", "cat-manifest", "--pretty-print", str(aci))
    assert pretty.stdout.startswith('{\n  "acKind": "ImageManifest"')
