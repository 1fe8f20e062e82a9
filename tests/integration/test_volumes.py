"""Volumes against a real systemd: empty ones shared between apps, host ones, their errors, and
paths that unit files and nspawn's options would misread (issue #10, item 6): a host volume whose
path holds a colon and a blank, mounted where the path holds a colon and a ``%``, which is also the
app's working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_pods import Nspod, bb, nspod  # noqa: F401  (fixtures)

pytestmark = pytest.mark.systemd


def test_volumes_empty_shared_and_host(nspod: Nspod, bb: Path, tmp_path: Path) -> None:  # noqa: F811
    host_dir = tmp_path / "host-data"
    host_dir.mkdir()
    (host_dir / "given").write_text("from the host\n")
    result = nspod(
        "run",
        "--volume=shared,kind=empty",
        f"--volume=data,kind=host,source={host_dir}",
        "--mount=volume=shared,target=/shared",
        str(bb),
        "--name=writer",
        "--mount=volume=data,target=/data",
        "--exec=/bin/sh",
        "--",
        "-c",
        "echo note > /shared/note; cat /data/given; echo written > /data/out",
        "---",
        str(bb),
        "--name=reader",
        "--mount=volume=data,target=/ro,readOnly=true",
        "--exec=/bin/sh",
        "--",
        "-c",
        "sleep 1; cat /shared/note; echo x > /ro/nope || echo read-only refused",
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split(": ", 1)[-1] for line in result.stdout.splitlines()]
    assert "from the host" in lines and "note" in lines and "read-only refused" in lines, lines
    assert (host_dir / "out").read_text() == "written\n" and not (host_dir / "nope").exists()


def test_volume_errors(nspod: Nspod, bb: Path, tmp_path: Path) -> None:  # noqa: F811
    missing = nspod(
        "run",
        f"--volume=data,kind=host,source={tmp_path}/absent",
        str(bb),
        "--mount=volume=data,target=/data",
    )
    assert missing.returncode == 254 and "does not exist" in missing.stderr
    undefined = nspod("run", str(bb), "--mount=volume=nope,target=/x")
    assert undefined.returncode == 2 and "'nope', which is not defined" in undefined.stderr
    bad = nspod("run", "--volume=data,kind=tmpfs", str(bb))
    assert bad.returncode == 2 and "bad --volume" in bad.stderr


def test_colons_blanks_and_percent_signs_in_paths(nspod: Nspod, bb: Path, tmp_path: Path) -> None:  # noqa: F811
    source = tmp_path / "vol:x y"
    source.mkdir()
    (source / "f").write_text("inside\n")
    target = "/mnt/a:b 50%"
    result = nspod(
        "run", f"--volume=d,kind=host,source={source}", str(bb), f"--mount=volume=d,target={target}",
        f"--working-dir={target}", "--exec=/bin/sh", "--", "-c", "pwd; cat f",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"bb: {target}\nbb: inside\n"
