"""Issue #23, item 2, the pure parts: with --private-users no volume and no writable layer is
ID-mapped unless the volume says ``idmap`` (``--volume …,idmap=true``, a pod file's ``idmap``);
empty volumes and the writable layer belong to the pod's host range. The attack itself:
tests/attacks/test_userns_setuid.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stage0.errors import UsageError
from stage0.pods.podfile import parse
from stage0.pods.requests import parse_volume
from stage1.abi import AppSpec, PodPaths, PodSpec, VolumeSpec
from stage1.nspawn.service import nspawn_argv
from stage1.poddir import make_volume

FIRST = 0x80000
PATHS = PodPaths("/var/lib/nspod/pods/run/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0")


def spec(*volumes: VolumeSpec, private_users: int | None = FIRST) -> PodSpec:
    app = AppSpec(name="web", rootfs="/images/web/rootfs", exec=("/bin/web",),
                  mounts=tuple((v.name, f"/{v.name}", False) for v in volumes))  # fmt: skip
    return PodSpec(uuid="0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0", machine="web", hostname="web", apps=(app,),
                   volumes=volumes, private_users=private_users)  # fmt: skip


def binds(argv: list[str], needle: str) -> list[str]:
    return [a for a in argv if a.startswith("--bind") and needle in a]


def test_volumes_and_the_writable_layer_are_not_id_mapped_by_default() -> None:
    argv = nspawn_argv(
        spec(VolumeSpec(name="data", kind="empty"), VolumeSpec(name="h", kind="host", source="/srv")), PATHS
    )
    assert binds(argv, "/volumes/") == [
        f"--bind={PATHS.volume('data')}:/opt/stage2/web/volumes/0",
        "--bind=/srv:/opt/stage2/web/volumes/1",
    ]
    assert binds(argv, "/overlay/web") == [f"--bind={PATHS.layers('web')}:/opt/stage2/web/layers"]
    # the image's own tree stays ID-mapped and read-only: its files are root's inside
    assert binds(argv, "/images/web/rootfs") == ["--bind-ro=/images/web/rootfs:/opt/stage2/web/lower:idmap"]


def test_a_volume_that_asks_is_id_mapped() -> None:
    argv = nspawn_argv(spec(VolumeSpec(name="h", kind="host", source="/srv", idmap=True)), PATHS)
    assert binds(argv, "/volumes/") == ["--bind=/srv:/opt/stage2/web/volumes/0:idmap"]
    plain = nspawn_argv(
        spec(VolumeSpec(name="h", kind="host", source="/srv", idmap=True), private_users=None), PATHS
    )
    assert binds(plain, "/volumes/") == ["--bind=/srv:/opt/stage2/web/volumes/0"]  # no user namespace: moot


def test_the_volume_flag_and_the_pod_file_name_it() -> None:
    assert parse_volume("d,kind=host,source=/srv,idmap=true").idmap
    assert parse_volume("d,kind=empty,idmap=true").idmap
    assert not parse_volume("d,kind=host,source=/srv").idmap
    with pytest.raises(UsageError, match="idmap must be true or false"):
        parse_volume("d,kind=empty,idmap=yes")
    pod = parse('[[volume]]\nname = "d"\nkind = "host"\nsource = "/srv"\nidmap = true\n'
                '[[app]]\nimage = "x"\n', "p.toml", "p")  # fmt: skip
    assert pod.request.volumes[0].idmap


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_an_empty_volume_belongs_to_the_pods_range(tmp_path: Path) -> None:
    paths = PodPaths(str(tmp_path))
    make_volume(paths, VolumeSpec(name="a", kind="empty", uid=7, gid=8), FIRST)
    make_volume(paths, VolumeSpec(name="b", kind="empty", uid=7, gid=8, idmap=True), FIRST)
    make_volume(paths, VolumeSpec(name="c", kind="empty", uid=7, gid=8), None)
    owners = {n: (os.stat(paths.volume(n)).st_uid, os.stat(paths.volume(n)).st_gid) for n in "abc"}
    assert owners == {"a": (FIRST + 7, FIRST + 8), "b": (7, 8), "c": (7, 8)}
