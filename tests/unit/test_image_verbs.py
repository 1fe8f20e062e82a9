"""nspod image list|rm|gc|export|extract|render|cat-manifest|verify and fetch --pull-policy on files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from stage0.images.aci.build import build_aci
from stage0.images.aci.compression import Compression
from tests.conftest import assert_output_schema, run_nspod


@pytest.fixture
def home(tmp_path: Path, layout: Path) -> Path:
    aci = tmp_path / "hello.aci"
    build_aci(str(layout), str(aci))
    return tmp_path


def nspod(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_nspod("--dir", str(home / "data"), "--local-config", str(home / "etc"), *args)


def fetch(home: Path, *args: str) -> str:
    result = nspod(home, "--insecure-options=image", "fetch", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_unsigned_file_is_refused_by_default(home: Path) -> None:
    result = nspod(home, "fetch", str(home / "hello.aci"))
    assert result.returncode == 254
    assert "is not signed" in result.stderr and "--insecure-options=image" in result.stderr


def test_list_formats(home: Path) -> None:
    image_id = fetch(home, str(home / "hello.aci"))
    table = nspod(home, "image", "list").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "SIZE", "IMPORT", "TIME", "LAST", "USED"]
    assert table[1].startswith(image_id[:39] + "  example.com/hello:1.0.0")
    bare = nspod(home, "image", "list", "--no-legend", "--full", "--fields", "id,name").stdout.split()
    assert bare == [image_id, "example.com/hello:1.0.0"]
    # JSON has every field whatever --fields says (stable keys), in the one output schema
    rows = json.loads(
        nspod(home, "image", "list", "--format", "json", "--fields", "id,name,size,latest").stdout
    )
    assert_output_schema("image-list", rows)
    assert (rows[0]["id"], rows[0]["name"], rows[0]["version"]) == (image_id, "example.com/hello", "1.0.0")
    assert rows[0]["size"] > 0 and rows[0]["latest"] is False and rows[0]["importtime"].endswith("Z")
    bad = nspod(home, "image", "list", "--fields", "id,colour")
    assert bad.returncode == 2 and "colour" in bad.stderr


def test_sort_and_order(home: Path, layout: Path) -> None:
    first = fetch(home, str(home / "hello.aci"))
    (layout / "manifest").write_text(
        (layout / "manifest").read_text().replace("example.com/hello", "example.com/another")
    )
    build_aci(str(layout), str(home / "another.aci"))
    second = fetch(home, str(home / "another.aci"))
    by_name = nspod(
        home, "image", "list", "--no-legend", "--full", "--fields", "id", "--sort", "name"
    ).stdout
    assert by_name.split() == [second, first]
    newest_first = nspod(home, "image", "list", "--no-legend", "--full", "--fields", "id", "--order", "desc")
    assert newest_first.stdout.split() == [second, first]


def test_pull_policy_never_and_new(home: Path) -> None:
    missing = nspod(home, "fetch", "--pull-policy=never", "example.com/hello:1.0.0")
    assert missing.returncode == 254 and "not in the store" in missing.stderr
    image_id = fetch(home, str(home / "hello.aci"))
    assert fetch(home, "--pull-policy=never", "example.com/hello:1.0.0") == image_id
    assert fetch(home, "--pull-policy=new", "example.com/hello") == image_id
    assert fetch(home, image_id[:20]) == image_id


def test_export_is_byte_identical_and_extract(home: Path, tmp_path: Path) -> None:
    image_id = fetch(home, str(home / "hello.aci"))
    out = tmp_path / "out.aci"
    assert nspod(home, "image", "export", image_id[:16], str(out)).returncode == 0
    assert out.read_bytes() == (home / "hello.aci").read_bytes()
    again = nspod(home, "image", "export", image_id, str(out))
    assert again.returncode == 254 and "--overwrite" in again.stderr
    extracted = tmp_path / "x"
    assert nspod(home, "image", "extract", "example.com/hello", str(extracted)).returncode == 0
    assert (extracted / "rootfs/bin/hello").read_text() == "#!/bin/sh\necho hello\n"
    assert (
        os.stat(extracted / "rootfs/bin/hello").st_ino
        == os.stat(extracted / "rootfs/bin/hello-again").st_ino
    )
    assert json.loads((extracted / "manifest").read_text())["name"] == "example.com/hello"
    only = tmp_path / "only"
    assert nspod(home, "image", "render", "--rootfs-only", image_id, str(only)).returncode == 0
    assert os.readlink(only / "bin/greet") == "hello" and not (only / "manifest").exists()
    busy = nspod(home, "image", "extract", image_id, str(only))
    assert busy.returncode == 254 and "not an empty directory" in busy.stderr


def test_cat_manifest_from_store(home: Path) -> None:
    fetch(home, str(home / "hello.aci"))
    result = nspod(home, "image", "cat-manifest", "--pretty-print", "example.com/hello:1.0.0")
    assert result.returncode == 0 and json.loads(result.stdout)["name"] == "example.com/hello"


def test_verify_detects_damage(home: Path) -> None:
    image_id = fetch(home, str(home / "hello.aci"))
    good = nspod(home, "image", "verify", image_id)
    assert good.returncode == 0 and "content matches its ID; no signature stored" in good.stdout
    blob = home / "data/images/blobs" / image_id
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip a byte inside the deflate stream (not the header)
    blob.write_bytes(bytes(data))
    bad = nspod(home, "image", "verify", image_id)
    assert bad.returncode == 254


def test_rm_and_gc(home: Path) -> None:
    image_id = fetch(home, str(home / "hello.aci"))
    kept = nspod(home, "image", "gc")  # default grace 24h: just used, so kept
    assert kept.returncode == 0 and kept.stdout == ""
    pod = home / "data/pods/run/0f0e0d0c/images"  # a running pod that uses the image
    pod.parent.mkdir(parents=True)
    pod.write_text(image_id + "\n")
    assert nspod(home, "image", "gc", "--grace-period=0s").stdout == ""
    refused = nspod(home, "image", "rm", image_id)
    assert refused.returncode == 254 and "used by a prepared or running pod" in refused.stderr
    pod.unlink()
    assert nspod(home, "image", "gc", "--grace-period=0s").stdout.startswith(f"removed {image_id}")
    assert nspod(home, "image", "list", "--no-legend").stdout == ""
    fetch(home, str(home / "hello.aci"))
    assert nspod(home, "image", "rm", "example.com/hello").stdout.strip() == f"removed {image_id}"
    missing = nspod(home, "image", "rm", "example.com/hello")
    assert missing.returncode == 254 and "no image example.com/hello" in missing.stderr
    bad = nspod(home, "image", "gc", "--grace-period=soon")
    assert bad.returncode == 2


def test_unchanged_file_is_not_imported_again_under_pull_policy_new(home: Path, layout: Path) -> None:
    import os

    from stage0.images.aci.compression import Compression

    aci = home / "plain.aci"  # uncompressed: new content of the same length keeps the file's size
    build_aci(str(layout), str(aci), compression=Compression.NONE)
    first = fetch(home, "--pull-policy=new", str(aci))
    # different bytes, same size and mtime: only a stat-based cache hit returns the first image
    st = aci.stat()
    (layout / "rootfs/etc/hostname").write_text("dop\n")
    build_aci(str(layout), str(aci), compression=Compression.NONE, overwrite=True)
    assert aci.stat().st_size == st.st_size
    os.utime(aci, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fetch(home, "--pull-policy=new", str(aci)) == first
    assert fetch(home, "--pull-policy=update", str(aci)) != first  # update always reads the file
    refused = nspod(home, "fetch", "--pull-policy=new", str(aci))
    assert refused.returncode == 254 and "is not signed" in refused.stderr  # trust is still checked


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs")
def test_a_full_disk_is_an_answer_not_an_internal_error(tmp_path: Path) -> None:
    # issue #9, defect 5: ENOSPC during an import was reported as a bug
    layout = tmp_path / "big"
    (layout / "rootfs").mkdir(parents=True)
    (layout / "rootfs/blob").write_bytes(os.urandom(3 << 20))
    (layout / "manifest").write_text(
        '{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/big"}'
    )
    aci = tmp_path / "big.aci"
    build_aci(str(layout), str(aci), compression=Compression.NONE)
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    try:
        result = run_nspod("--dir", str(small / "data"), "--insecure-options=image", "fetch", str(aci))
        assert result.returncode == 254, result.stderr
        assert "no space left" in result.stderr and "internal error" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 2  # one line, one hint
        images = small / "data/images"
        leftovers = [p for d in ("tmp", "blobs", "layers") for p in (images / d).glob("*")]
        assert leftovers == [], leftovers  # nothing half-written stays
    finally:
        subprocess.run(["umount", str(small)], check=True)
