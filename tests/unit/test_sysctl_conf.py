"""units/sysctl.d/60-nspod.conf (issue #26): installed by `make install` and the package, and
applied at once by both with the one key prefix that covers every key it sets."""

from __future__ import annotations

import subprocess

from tests.conftest import REPO

CONF = REPO / "units/sysctl.d/60-nspod.conf"
APPLY = "/lib/systemd/systemd-sysctl --prefix=fs.inotify"
PODS, INSTANCES_PER_POD = 1000, 4  # systemd's 3 and the pod's dbus-daemon's 1 (bench/RESULTS.md)


def settings() -> dict[str, str]:
    lines = [line.strip() for line in CONF.read_text().splitlines()]
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith(("#", ";"))]
    return {key.strip(): value.strip() for key, value in pairs}


def test_every_key_is_under_the_prefix_that_is_applied() -> None:
    # a key outside fs.inotify would be installed and then wait for the next boot
    assert settings() and all(key.startswith("fs.inotify.") for key in settings())


def test_a_thousand_pods_fit_the_inotify_instances() -> None:
    assert int(settings()["fs.inotify.max_user_instances"]) >= PODS * INSTANCES_PER_POD


def test_make_install_installs_and_applies_it() -> None:
    done = subprocess.run(["make", "-n", "install"], cwd=REPO, capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    placed = "install -D -m 0644 units/sysctl.d/60-nspod.conf /usr/local/lib/sysctl.d/60-nspod.conf"
    assert placed in lines and APPLY in lines
    assert lines.index(placed) < lines.index(APPLY)


def test_the_package_installs_and_applies_it() -> None:
    rules = (REPO / "packaging/debian/rules").read_text()
    assert "units/sysctl.d/60-nspod.conf $(PKG)/usr/lib/sysctl.d/60-nspod.conf" in rules
    postinst = (REPO / "packaging/debian/nspod.postinst").read_text()
    assert APPLY in postinst and "#DEBHELPER#" in postinst
