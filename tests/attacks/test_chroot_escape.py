"""An app's root is a directory systemd makes its "/" (RootDirectory=), and CAP_SYS_CHROOT is in
nspod's default bounding set (rkt's 14). programs/chrootesc.c tries the classic way out of a chroot:
chroot into a subdirectory with the working directory left outside it (at the old root, below it,
by a directory fd kept from before), then ".." up and chroot("."); and chroot to /proc/self/cwd/..,
/proc/1/root, /proc/self/root/.. . Where the root was a mount moved onto "/" and a chroot (not
pivot_root), ".." at that mount's root would climb to the pod's own tree beneath (every app's root,
the pod's /etc and /proc). As a root app, as user 1000, in a --private-users pod, as a command
``nspod enter`` runs, as an app added to an app sandbox and with the image's own filter (a
seccomp-remove-set of reboot alone: chroot allowed, and the climb still ends in its own root), it
finds only its own root."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image
from tests.attacks.test_namespaces import tries

pytestmark = pytest.mark.systemd

PLACES: dict[str, tuple[list[str], list[str]]] = {
    "root": ([], []),
    "user": ([], ["--user=1000", "--group=1000"]),
    "private-users": (["--private-users"], []),
    "enter": ([], []),
    "sandbox": ([], []),
    "image-filter": ([], []),  # the image's own seccomp-remove-set (reboot alone) for nspod's
}
# an image may bring a filter of its own (appc's seccomp-remove-set): one that leaves every mount
# call and chroot allowed, so that the bounding set and the binds hold alone
WEAK_FILTER = [{"name": "os/linux/seccomp-remove-set", "value": {"set": ["reboot"], "errno": "EPERM"}}]


def _sandboxed(nspod: Nspod, image: Path) -> str:
    made = nspod("app", "sandbox")
    assert made.returncode == 0, made.stderr
    uuid = made.stdout.strip().splitlines()[-1]
    try:
        added = nspod("app", "add", uuid, str(image), "--name", "attack", "--exec", "/bin/chrootesc")
        assert added.returncode == 0, added.stderr
        assert nspod("app", "start", uuid, "--app", "attack").returncode == 0
        deadline = time.monotonic() + 60
        while "done" not in tries(out := nspod("logs", uuid, "--app", "attack").stdout):
            assert time.monotonic() < deadline, out
            time.sleep(0.2)
        return out
    finally:
        nspod("stop", uuid)
        nspod("rm", uuid)


def _attack(nspod: Nspod, image: Path, place: str) -> str:
    if place == "sandbox":
        return _sandboxed(nspod, image)
    if place != "enter":
        pod, app = PLACES[place]
        ran = nspod("run", *pod, str(image), "--exec=/bin/chrootesc", *app)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        return ran.stdout
    started = nspod("run", "--detach", "--name=chrootesc-enter", str(image))
    assert started.returncode == 0, started.stderr
    try:
        entered = nspod("enter", "chrootesc-enter", "--", "/bin/chrootesc")
        assert entered.returncode == 0, entered.stdout + entered.stderr
        return entered.stdout
    finally:
        nspod("stop", "chrootesc-enter")


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory, programs: Mapping[str, Path]) -> dict[str, str]:
    base = tmp_path_factory.mktemp("chrootesc")
    images = {}
    for kind, app in (("default", {}), ("image-filter", {"isolators": WEAK_FILTER})):
        (base / kind).mkdir()
        images[kind] = attack_image(
            base / kind,
            ["/bin/sleep", "600"],
            programs={"chrootesc": programs["chrootesc"]},
            files={"/chrootesc-app": ""},  # the program runs nowhere else; its absence is the way out
            app=app,
        )
    nspod = Nspod(base / "data")
    return {place: _attack(nspod, images.get(place, images["default"]), place) for place in PLACES}


@pytest.mark.parametrize("place", PLACES)
def test_no_app_climbs_out_of_its_root(seen: dict[str, str], place: str) -> None:
    print(seen[place])  # every try and what an escape saw, for a reviewer (pytest -rP)
    results = tries(seen[place])
    assert results.get("done") == "0" and results.get("control:marker") == "ESCAPED", seen[place]
    assert len([t for t in results if t.startswith(("climb:", "chroot:"))]) == 6, results
    escaped = sorted(t for t, r in results.items() if r == "ESCAPED" and t != "control:marker")
    assert escaped == [], f"{place}: {escaped}\n{seen[place]}"
