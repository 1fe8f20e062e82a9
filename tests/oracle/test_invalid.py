"""Every invalid input is refused by nspod with one line naming the field, and actool agrees."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from stage0.cli import main
from tests.oracle.corpus import CASES, IMAGE, Case

pytestmark = pytest.mark.oracle


def nspod_validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["image", "validate", str(path)])
    return code, capsys.readouterr().err.splitlines()


def actool_rejects(actool: Path, path: Path) -> bool:
    result = subprocess.run([str(actool), "validate", str(path)], capture_output=True, text=True, timeout=60)
    return result.returncode != 0


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_manifest_refused(
    case: Case, tmp_path: Path, actool: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(case.document()))
    code, lines = nspod_validate(path, capsys)
    assert code == 254
    assert len(lines) == 2 and lines[1].startswith("  hint: "), lines
    assert lines[0].startswith(f"nspod: {path}: {case.pointer}: "), lines[0]
    if case.actool is True:
        assert actool_rejects(actool, path), f"actool accepts {case.id}"
    else:
        assert not actool_rejects(actool, path), f"documented difference no longer holds: {case.actool}"


def test_corpus_is_large_enough() -> None:
    assert len(CASES) + len(LAYOUTS) + len(ACIS) >= 30


# -- layouts and archives -----------------------------------------------------------------------


def make_layout(root: Path, *, manifest: bool = True, rootfs: bool = True, extra: str | None = None) -> Path:
    root.mkdir()
    if manifest:
        (root / "manifest").write_text(json.dumps(IMAGE))
    if rootfs:
        (root / "rootfs").mkdir()
    if extra:
        (root / extra).write_text("stray\n")
    return root


LAYOUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "layout-no-rootfs": (lambda p: make_layout(p, rootfs=False), "no 'rootfs' directory"),
    "layout-no-manifest": (lambda p: make_layout(p, manifest=False), "no 'manifest' file"),
    "layout-extra-entry": (lambda p: make_layout(p, extra="README"), "unexpected entry 'README'"),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_refused(name: str, tmp_path: Path, actool: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make, message = LAYOUTS[name]
    path = make(tmp_path / "layout")
    code, lines = nspod_validate(path, capsys)
    assert code == 254 and message in lines[0], lines
    assert actool_rejects(actool, path)


def tar_of(entries: list[tuple[str, bytes | None]]) -> bytes:
    """A tar from (name, content) pairs; content None makes a directory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


GOOD_MANIFEST = json.dumps(IMAGE).encode()
ACIS: dict[str, tuple[list[tuple[str, bytes | None]], str]] = {
    "aci-extra-top-level": (
        [("manifest", GOOD_MANIFEST), ("rootfs", None), ("extra", b"x")],
        "unexpected entry",
    ),
    "aci-duplicate-entry": (
        [("manifest", GOOD_MANIFEST), ("rootfs", None), ("rootfs/a", b"1"), ("rootfs/a", b"2")],
        "duplicate entry 'rootfs/a'",
    ),
    "aci-no-rootfs": ([("manifest", GOOD_MANIFEST)], "no 'rootfs'"),
    "aci-no-manifest": ([("rootfs", None), ("rootfs/a", b"1")], "no 'manifest'"),
    "aci-bad-manifest": (
        [("manifest", b'{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "A"}'), ("rootfs", None)],
        ":manifest: /name: ",
    ),
}


def test_stray_rootfs_prefix_refused(
    tmp_path: Path, actool: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Documented difference: actool only checks that a top-level name starts with 'rootfs'."""
    path = tmp_path / "image.aci"
    path.write_bytes(tar_of([("manifest", GOOD_MANIFEST), ("rootfs", None), ("rootfsx", None)]))
    code, lines = nspod_validate(path, capsys)
    assert code == 254 and "unexpected entry 'rootfsx'" in lines[0], lines
    assert not actool_rejects(actool, path)


@pytest.mark.parametrize("name", sorted(ACIS))
def test_aci_refused(name: str, tmp_path: Path, actool: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entries, message = ACIS[name]
    path = tmp_path / "image.aci"
    path.write_bytes(tar_of(entries))
    code, lines = nspod_validate(path, capsys)
    assert code == 254 and message in lines[0], lines
    assert actool_rejects(actool, path)
