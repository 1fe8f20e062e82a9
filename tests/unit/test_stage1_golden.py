"""Golden files for what stage1 generates: the units inside a pod, and the host's nspawn command line."""

from __future__ import annotations

import shlex

import pytest

from stage1.abi import AppSpec, PodPaths, PodSpec, VolumeSpec
from stage1.nspawn.service import nspawn_argv, pod_service
from stage1.transient import render_properties
from stage1.units import tree
from tests.conftest import assert_golden

SPEC = PodSpec(
    uuid="0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0",
    machine="web",
    hostname="web.example",
    apps=(
        AppSpec(
            name="server",
            rootfs="/var/lib/nspod/images/layers/sha512-aa/rootfs",
            exec=("/usr/bin/server", "--port=80", 'quote"d', "$HOME", "50%"),
            env=(("GREETING", "hello world"), ("EMPTY", "")),
            user=1000,
            group=2000,
            supplementary_gids=(3000, 4000),
            working_directory="/srv",
            pre_start=(("/bin/prepare", "--fast"),),
            post_stop=(("/bin/cleanup",),),
            notify=True,
            mounts=(("data", "/var/lib/data", False), ("scratch", "/tmp/scratch", True)),
        ),
        AppSpec(
            name="sidecar",
            rootfs="/var/lib/nspod/images/trees/deps-bb/rootfs",
            exec=("/bin/sleep", "60"),
            read_only_rootfs=True,
        ),
    ),
    volumes=(
        VolumeSpec(name="data", kind="host", source="/srv/data"),
        VolumeSpec(name="scratch", kind="empty"),
    ),
)
PATHS = PodPaths("/var/lib/nspod/pods/run/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0")


def test_units_golden() -> None:
    files = tree(SPEC)
    text = "".join(
        f"### {path} (mode {file.mode:o})\n{file.content}\n" for path, file in sorted(files.files.items())
    )
    text += "### links\n" + "".join(f"{link} -> {target}\n" for link, target in sorted(files.links.items()))
    text += "### dirs\n" + "".join(f"{d}\n" for d in files.dirs)
    assert_golden("stage1-tree.txt", text)


def test_nspawn_argv_golden() -> None:
    argv = nspawn_argv(SPEC, PATHS)
    assert_golden("nspawn-argv.txt", "\n".join(shlex.quote(a) for a in argv) + "\n")
    assert_golden("nspawn-argv-debug.txt", "\n".join(nspawn_argv(SPEC, PATHS, debug=True)) + "\n")


def test_host_unit_golden() -> None:
    assert_golden("pod-transient-unit.txt", render_properties(pod_service(SPEC, PATHS).properties()))


def test_pod_spec_round_trip() -> None:
    assert PodSpec.from_json(SPEC.to_json()) == SPEC


def test_inherited_sockets_golden() -> None:
    from stage1.units import assign_sockets

    spec = PodSpec(
        uuid=SPEC.uuid,
        machine="web",
        hostname="web",
        apps=(
            AppSpec(name="front", rootfs="/r", exec=("/bin/front",)),
            AppSpec(name="server", rootfs="/r", exec=("/bin/server",), sockets=("http", "admin")),
        ),
    )
    sockets = assign_sockets(
        spec,
        [
            ("http", "ListenStream", "127.0.0.1:80"),
            ("", "ListenDatagram", "[::1]:53"),
            ("metrics", "ListenStream", "/run/metrics.sock"),
        ],
    )
    assert [(s.app, s.name) for s in sockets] == [
        ("server", "http"),
        ("server", "fd4"),
        ("server", "metrics"),
    ]
    files = tree(spec, sockets).files
    text = "".join(
        f"### {path}\n{files[path].content}\n"
        for path in sorted(files)
        if path.endswith((".socket", ".conf", "server.service"))
    )
    assert_golden("stage1-sockets.txt", text)


def test_foreground_stdio_golden() -> None:
    """How each foreground mode wires the apps (stage1/stdio.py): their units' stdio lines, nspawn's
    options and the host unit's descriptors."""
    from stage1.stdio import Stdio

    one = PodSpec(uuid=SPEC.uuid, machine="web", hostname="web", apps=SPEC.apps[:1], volumes=SPEC.volumes)
    text = ""
    for stdio in Stdio:
        spec = one if stdio.single_app else SPEC
        files = tree(spec, stdio=stdio).files
        units = sorted(p for p in files if p.endswith(("/server.service", "/sidecar.service")))
        text += f"## {stdio}\n"
        for path in units:
            text += "".join(
                f"{path.rsplit('/', 1)[1]}: {line}\n"
                for line in files[path].content.splitlines()
                if line.startswith(("Standard", "TTYPath"))
            )
        argv = nspawn_argv(spec, PATHS, stdio=stdio)
        text += "nspawn: " + " ".join(
            a for a in argv if a.startswith("--console") or a.endswith("/run/nspod/io")
        )
        text += "\n"
        terminal = (0, 1, 2) if stdio is Stdio.TTY else None
        props = pod_service(spec, PATHS, stdio=stdio, terminal=terminal).properties()
        text += "".join(f"host unit: {p.name}={p.value}\n" for p in props if p.signature == "h")
    assert_golden("stage1-stdio.txt", text)


def test_paths_are_escaped_for_units_and_nspawn() -> None:
    from stage1.abi import Error
    from stage1.escape import nspawn_bind, path

    assert path("/srv/50% off\\x") == "/srv/50%% off\\x"  # blanks and backslashes are literal there
    for bad in ("relative", "/trailing ", "/new\nline"):
        with pytest.raises(Error, match="cannot write the path"):
            path(bad)
    assert nspawn_bind("--bind", "/a:b\\c, d", "/x") == "--bind=/a\\:b\\\\c, d:/x"


def test_a_spec_of_the_previous_abi_still_reads() -> None:
    """ABI 2 only added fields with defaults: a pod prepared by the nspod before still runs."""
    import json

    from stage1.abi import Error

    old = json.loads(SPEC.to_json())
    old["abi"] = 1
    for app in old["apps"]:
        for key in ("cpu_shares", "oom_score_adj", "relaxed"):
            del app[key]
    assert PodSpec.from_json(json.dumps(old)).apps[0].relaxed == ()
    old["abi"] = 99
    with pytest.raises(Error, match="pod spec has ABI version 99"):
        PodSpec.from_json(json.dumps(old))
