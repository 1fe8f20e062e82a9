"""vagrant/Vagrantfile is one Vagrant accepts (`vagrant validate`, with Debian's vagrant and its
libvirt provider: validating needs a provider to check the provider settings against)."""

from __future__ import annotations

import subprocess

from tests.conftest import REPO, tool


def test_vagrant_validate() -> None:
    vagrant = tool("vagrant")
    done = subprocess.run(
        [vagrant, "validate"], cwd=REPO / "vagrant", capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": "/root", "VAGRANT_CHECKPOINT_DISABLE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validated successfully" in done.stdout
