"""The guards tests/attacks/test_verbs_a_attacks.py found missing, on their pure parts and on
crafted trees: top's text escaped, reserved IDs refused, exec -u's account edits serialized, and a
copy out that keeps holes, reads a growing file once, and never writes through a host link."""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import pytest

from stage0.api import copying
from stage0.api.copying import Owner, copy_in, copy_out
from stage0.cli.top import shown
from stage0.errors import FailedPreconditionError
from stage1.abi import Error
from stage1.nspawn.exec_as import Overrides, admit, valid_id


def test_top_escapes_what_a_terminal_would_obey() -> None:
    assert shown("sh /tmp/\x1b]0;PWNED\x07x.sh") == "sh /tmp/\\x1b]0;PWNED\\x07x.sh"
    assert shown("a\nforged line\r\u202eevil") == "a\\nforged line\\r\\u202eevil"
    assert shown("nginx: worker process é") == "nginx: worker process é"


@pytest.mark.parametrize("user", ["4294967295", "0:4294967295", "65535", "99999999999999999999"])
def test_ids_systemd_reserves_are_refused(user: str) -> None:
    with pytest.raises(Error):
        Overrides.parse([], user, None)


def test_valid_ids() -> None:
    assert valid_id(0) and valid_id(1000) and valid_id(65534) and valid_id(4294967294)
    assert not valid_id(65535) and not valid_id(4294967295) and not valid_id(-1)


def test_concurrent_admits_keep_every_line(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\n")
    uids = range(5000, 5032)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda uid: admit(str(tmp_path), uid, uid), uids))
    passwd, group = (tmp_path / "etc/passwd").read_text(), (tmp_path / "etc/group").read_text()
    assert all(f":{uid}:{uid}:" in passwd and f":{uid}:\n" in group for uid in uids)


def copied_out(root: Path, path: str, dest: Path) -> int:
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        return copy_out(fd, path, str(dest))
    finally:
        os.close(fd)


def test_a_sparse_file_stays_sparse(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    with open(tmp_path / "root/sparse", "wb") as file:
        file.write(b"head")
        file.truncate(1 << 40)  # a terabyte of holes
        file.seek(1 << 39)
        file.write(b"middle")
    copied_out(tmp_path / "root", "/sparse", tmp_path / "got")
    info = (tmp_path / "got").stat()
    assert info.st_size == 1 << 40 and info.st_blocks * 512 < 1 << 20
    with open(tmp_path / "got", "rb") as file:
        assert file.read(4) == b"head"
        file.seek(1 << 39)
        assert file.read(6) == b"middle"


def test_a_host_link_below_the_destination_is_never_written_through(tmp_path: Path) -> None:
    """A name the app's directory listed twice (renamed in while read) — once a link, once a
    directory — would have nspod make a host link, then write through it: it is refused."""
    (tmp_path / "root/d/a").mkdir(parents=True)
    (tmp_path / "root/d/a/f").write_text("app")
    (tmp_path / "outside").mkdir()
    (tmp_path / "dest/d").mkdir(parents=True)
    (tmp_path / "dest/d/a").symlink_to(tmp_path / "outside")
    with pytest.raises(Error):
        copied_out(tmp_path / "root", "/d", tmp_path / "dest")
    assert list((tmp_path / "outside").iterdir()) == []
    assert (tmp_path / "outside").stat().st_mode & 0o777 == 0o755


def test_a_tree_too_deep_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copying, "MAX_DEPTH", 4)  # a small tree (pytest's cleanup recurses too)
    (tmp_path / "root/deep/a/a/a/a/a").mkdir(parents=True)
    with pytest.raises(FailedPreconditionError, match="4 directories deep"):
        copied_out(tmp_path / "root", "/deep", tmp_path / "got")
    assert copied_out(tmp_path / "root", "/deep/a/a", tmp_path / "got2") == 4


def test_a_link_copied_in_is_the_apps_by_its_descriptor(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "link").symlink_to("/nowhere")
    owner = Owner(1234, 4321) if os.getuid() == 0 else Owner(os.getuid(), os.getgid())
    fd = os.open(tmp_path / "root", os.O_PATH | os.O_DIRECTORY)
    try:
        copy_in(fd, str(tmp_path / "link"), "/link", owner)
    finally:
        os.close(fd)
    info = (tmp_path / "root/link").lstat()
    assert os.readlink(tmp_path / "root/link") == "/nowhere"
    assert (info.st_uid, info.st_gid) == (owner.uid, owner.gid)
