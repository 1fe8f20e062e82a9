"""`make install` and the Debian package agree on what nspod needs, and `make package` installs the
package's Build-Depends from debian/control itself (issue #23 item 15: a list kept by hand in
build-deb.sh lacked python3-jsonschema and python3-zstandard, and `make test` failed on a machine
without them)."""

from __future__ import annotations

import re
import shlex
import subprocess

from tests.conftest import REPO

CONTROL = REPO / "packaging" / "debian" / "control"
# what `make install` needs beyond the package's Depends: the venv it installs into
VENV_ONLY = {"python3-venv"}


def control_field(name: str) -> set[str]:
    """Package names of one field of debian/control, read independently of control-deps.sh."""
    names: set[str] = set()
    for paragraph in CONTROL.read_text().split("\n\n"):
        value = re.search(rf"^{name}:(.*(?:\n[ \t].*)*)", paragraph, re.MULTILINE)
        if value is None:
            continue
        for dep in value.group(1).split(","):
            first = re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", dep.split("|")[0]).strip()
            if first and not first.startswith("${"):
                names.add(first.split(":")[0])
    return names


def make_dry_run(target: str) -> list[list[str]]:
    done = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, check=True)
    return [shlex.split(line) for line in done.stdout.splitlines() if line.strip()]


def test_control_deps_script_reads_control() -> None:
    for field in ("Depends", "Build-Depends"):
        out = subprocess.run(
            [REPO / "packaging" / "control-deps.sh", field], capture_output=True, text=True, check=True
        ).stdout.split()
        assert set(out) == control_field(field), field
    assert "python3-jsonschema" in control_field("Build-Depends")


def test_make_install_installs_the_package_depends() -> None:
    """Its Depends and, as apt installs them by default, its Recommends (the kvm flavor's)."""
    (ensure,) = [argv for argv in make_dry_run("deb") if argv[0].endswith("apt-ensure.sh")]
    installed = set(ensure[1:])
    system = {
        p for p in control_field("Depends") | control_field("Recommends") if not p.startswith("python3-")
    }
    assert system <= installed, f"make install lacks {sorted(system - installed)}"
    # pystemd, built by pip; nspod-pidns, static (stage1/helpers: make helpers)
    build_only = {"gcc", "libc6-dev", "pkg-config", "libsystemd-dev", "python3-dev"}
    extra = installed - control_field("Depends") - control_field("Recommends") - VENV_ONLY - build_only
    assert not extra, (
        f"make install installs {sorted(extra)}, which the package neither depends on nor recommends"
    )


def test_make_package_installs_build_depends_from_control() -> None:
    script = (REPO / "packaging" / "build-deb.sh").read_text().replace("\\\n", " ")
    calls = [shlex.split(line)[1:] for line in script.splitlines() if "apt-ensure.sh" in line]
    assert any(call[:1] == ["--build-deps"] for call in calls), calls
    # no second, hand-kept list of build dependencies that could drift from the control file
    named = {arg for call in calls for arg in call if not arg.startswith("-")}
    assert not named & control_field("Build-Depends"), named & control_field("Build-Depends")
