"""The kernel's keyrings are not per container: a pod's root is host root (no --private-users), so
its user keyring is host root's, where host services keep secrets (CIFS and NFS credentials, DNS
resolver keys, Kerberos tickets). nspod's default filter denies @keyring (as Docker's and podman's
do). programs/keyleak.c asks for the user keyrings' IDs, describes and reads them, adds a key and
requests one: with nspod's default filter, and with the image's own filter (appc's
seccomp-remove-set: the image replaces nspod's deny-list with one of its own). The test looks for
the planted key in host root's user keyring (the test host's: one kernel)."""

from __future__ import annotations

import ctypes
import secrets
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image
from tests.attacks.test_namespaces import tries

pytestmark = pytest.mark.systemd

SYS_KEYCTL = 250  # x86-64
KEYCTL_SEARCH, KEYCTL_INVALIDATE, KEY_SPEC_USER_KEYRING = 10, 21, -4
WEAK_FILTER = [{"name": "os/linux/seccomp-remove-set", "value": {"set": ["reboot"], "errno": "EPERM"}}]


def host_key(description: str) -> int:
    """The key ``description`` in this (host root's) user keyring, invalidated; 0: none."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    found = int(
        libc.syscall(SYS_KEYCTL, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, b"user", description.encode(), 0)
    )
    if found > 0:
        libc.syscall(SYS_KEYCTL, KEYCTL_INVALIDATE, found)
    return max(found, 0)


@pytest.mark.parametrize("filtered", ["default", "image-filter"])
def test_no_app_reaches_host_roots_keyring(
    tmp_path: Path, programs: Mapping[str, Path], filtered: str
) -> None:
    marker = f"nspod-keyleak-{secrets.token_hex(6)}"
    app = {"isolators": WEAK_FILTER} if filtered == "image-filter" else {}
    image = attack_image(
        tmp_path, ["/bin/keyleak", marker], programs={"keyleak": programs["keyleak"]},
        files={"/keyleak-image": ""}, app=app,
    )  # fmt: skip
    ran = Nspod(tmp_path / "data")("run", str(image))
    print(ran.stdout)  # for a reviewer (pytest -rP)
    results = tries(ran.stdout)
    assert results.get("done") == "0", ran.stdout + ran.stderr
    planted = host_key(marker)
    escaped = sorted(t for t, r in results.items() if r == "ESCAPED")
    assert (escaped, planted) == ([], 0), ran.stdout
