"""Issue #23, item 1, through an OCI image: its config's ``Volumes`` become the app's mount points
(stage0/images/oci/convert.py), and its layer makes ``/data`` a link to stage1's programs. The user's
volume for it lands inside the app's root, and the volume's ``reaper`` never runs."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, nspod  # noqa: F401  (fixture)
from tests.attacks.test_mount_links import attack_volume, check, gone, wait_for
from tests.harness.registry import Layout

pytestmark = pytest.mark.systemd


def link_layer(path: Path, name: str, target: str) -> Path:
    """A layer holding one symlink, as an attacker packs it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        tar.addfile(info)
    path.write_bytes(buffer.getvalue())
    return path


def test_an_oci_volume_behind_a_link_stays_in_the_apps_root(nspod: Nspod, tmp_path: Path) -> None:  # noqa: F811
    volume = attack_volume(tmp_path, "oci")
    layout = Layout(tmp_path / "layout")
    layout.busybox("linked", applets=("sh", "cat", "sleep", "id"))
    layout.raw_layer("linked", link_layer(tmp_path / "link.tar", "data", "/nspod/bin"))
    layout.config("linked", "--config.volume", "/data", "--config.entrypoint", "/bin/sh")
    machine = "oci-volume-link"
    ran = nspod(
        "run", "--detach", f"--name={machine}", f"--volume=volume-data,kind=host,source={volume}",
        f"oci:{layout.path}:linked", "--name=app", "--", "-c", "cat /data/given > /data/seen; sleep 3",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    mounts = wait_for(volume, machine, deadline)
    while time.monotonic() < deadline and not gone(machine):
        time.sleep(0.2)
    assert ran.returncode == 0, ran.stderr
    check(volume, mounts, refused=False, app="app")
