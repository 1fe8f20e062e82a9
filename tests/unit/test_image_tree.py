"""The real image tree adapter (stage0/images/tree.py), on a rootfs on disk: paths resolved as the
app would see them, symlinks followed inside the image and never out of it."""

from __future__ import annotations

from pathlib import Path


def test_rootfs_tree_follows_links_inside_the_image(tmp_path: Path) -> None:
    from stage0.images.tree import RootfsTree

    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/busybox").write_text("#!/bin/sh\n")
    (tmp_path / "usr/bin/busybox").chmod(0o755)
    (tmp_path / "bin").symlink_to("usr/bin")
    (tmp_path / "usr/bin/sh").symlink_to("/usr/bin/busybox")  # absolute: inside the image, not the host's
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\nweb:x:1000:1000::/:/bin/sh\n")
    tree = RootfsTree(str(tmp_path))
    assert tree.is_executable("/bin/sh") and not tree.is_executable("/etc/passwd")
    assert tree.account("passwd", "web") == 1000 and tree.account("group", "web") is None
    assert tree.resolve("/../../etc/passwd") == str(tmp_path / "etc/passwd")  # '..' stops at the root
    (tmp_path / "loop").symlink_to("loop")
    assert tree.resolve("/loop") is None and tree.owner("/missing") is None
