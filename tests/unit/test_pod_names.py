"""Pod names are checked up front against systemd's rule for machine names (issue #23 item 11):
nothing is made for a pod whose name nspawn would refuse, and the user gets one line and exit 2."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from stage0.errors import UsageError
from stage0.images.aci.build import build_aci
from stage0.pods.requests import check_pod_name
from tests.conftest import run_nspod

VALID = ["web", "a", "A-b9", "ab-cd", "x.y.z", "web-1.example", "nspod-0f1e2d3c", "a" * 64, "9"]
INVALID = ["a_b", "a-", "-a", "a..b", ".a", "a.", "a-.b", "a.-b", "a" * 65, ".host", "a b", "a@b", "é", "",
           "a/b", "a:b", "web\n"]  # fmt: skip


@pytest.mark.parametrize("name", VALID)
def test_valid_names(name: str) -> None:
    assert check_pod_name(name) == name


@pytest.mark.parametrize("name", INVALID)
def test_invalid_names(name: str) -> None:
    with pytest.raises(UsageError, match="not a valid pod name"):
        check_pod_name(name)


@pytest.mark.parametrize("name", [n for n in VALID + INVALID if n])
def test_the_rule_is_nspawns(name: str) -> None:
    """systemd-nspawn itself (its --machine check comes before any other) agrees, name by name."""
    nspawn = shutil.which("systemd-nspawn")
    if nspawn is None:
        pytest.skip("systemd-nspawn is not installed")
    said = subprocess.run([nspawn, f"--machine={name}", "-D", "/nonexistent/nspod-test"],
                          capture_output=True, text=True, timeout=30).stderr  # fmt: skip
    refused = "Invalid machine name" in said
    try:
        check_pod_name(name)
        ours = False
    except UsageError:
        ours = True
    assert ours == refused, said


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--name=a_b"],
        ["run", "--detach", "--name=web-", "--uuid-file-save=UUIDFILE"],
        ["prepare", "--name=a..b"],
        ["app", "sandbox", "--name=a_b"],
        ["run", "--save-as=a_b"],
    ],
)
def test_a_bad_name_is_refused_before_anything_is_made(
    tmp_path: Path, layout: Path, argv: list[str]
) -> None:
    aci = tmp_path / "hello.aci"
    build_aci(str(layout), str(aci))
    data, etc = tmp_path / "data", tmp_path / "etc"
    argv = [a.replace("UUIDFILE", str(tmp_path / "uuid")) for a in argv]
    base = ["--dir", str(data), "--local-config", str(etc), "--insecure-options=image"]
    images = [] if argv[:2] == ["app", "sandbox"] else [str(aci)]
    done = run_nspod(*base, *argv, *images)
    assert done.returncode == 2, done.stderr
    (line, hint) = done.stderr.splitlines()
    assert "is not a valid pod name" in line and "hint:" in hint, done.stderr
    assert done.stdout == ""  # no UUID
    assert not (tmp_path / "uuid").exists()
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert [m for m in made if not m.startswith("layout") and m != "hello.aci"] == [], made


def test_a_pod_files_name_is_the_same_rule(tmp_path: Path, layout: Path) -> None:
    bad = tmp_path / "a_b.toml"
    bad.write_text('[[app]]\nimage = "example.com/hello"\n')
    done = run_nspod("pod", "validate", str(bad))
    assert done.returncode == 2 and f"{bad}: 'a_b' is not a valid pod name" in done.stderr, done.stderr
    good = tmp_path / "web.v2.toml"
    good.write_text('[[app]]\nimage = "example.com/hello"\n')
    assert run_nspod("pod", "validate", str(good)).returncode == 0
