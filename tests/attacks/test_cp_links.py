"""Issue #27 item 1 (``nspod cp``): a path of an app is resolved inside the app's root, whatever
the image's links say. The image holds a decoy at the very path of a host directory holding a
secret, and links towards it of every shape: absolute, a chain of ``..``, a linked parent
directory, a chain of links, /proc's magic links; and the app swaps a directory for a link while
copies run. Each copy lands on the decoy (or is refused, 254) — never on the host's file — and a
copy into the app never writes the host's directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image

pytestmark = pytest.mark.systemd
SECRET, DECOY = "HOST-SECRET\n", "decoy\n"


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("cpsecret")
    (where / "shadow").write_text(SECRET)
    return where


def links(secret: Path) -> dict[str, str]:
    up = "../" * 12
    return {
        "abs": str(secret),
        "dotdot": up + str(secret).lstrip("/"),
        "parent": "/",
        "chain": "hop",
        "hop": "../../hop2",
        "hop2": str(secret),
        "tree/inner": f"{secret}/shadow",
        "victim": f"{secret}/shadow",
        "bin/mkfifo": "busybox",
    }


# the app: idle until /go, then swaps /race/d between a directory and a link to the secret's
# directory (its decoy in the app) until /stop
RACE = (
    "mkfifo /fifo; while [ ! -e /go ]; do sleep 0.2; done; mkdir -p /race; "
    "while [ ! -e /stop ]; do rm -rf /race/d; mkdir /race/d; echo race > /race/d/f; "
    "rm -rf /race/d; ln -s {secret} /race/d; done; sleep 600"
)


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory, secret: Path) -> Iterator[tuple[Nspod, str]]:
    base = tmp_path_factory.mktemp("cplinks")
    image = attack_image(
        base,
        ["/bin/sh", "-c", RACE.format(secret=secret)],
        files={f"{secret}/shadow": DECOY, "tree/plain": "plain\n"},
        links=links(secret),
    )
    nspod = Nspod(base / "data")
    ran = nspod("run", "--detach", "--name=cp-links", str(image))
    assert ran.returncode == 0, ran.stderr
    try:
        yield nspod, "cp-links"
    finally:
        nspod("stop", "--force", "cp-links")


def untouched(secret: Path) -> None:
    assert sorted(p.name for p in secret.iterdir()) == ["shadow"]
    assert (secret / "shadow").read_text() == SECRET


OUT_CASES = {
    "absolute-link": "/abs/shadow",
    "dotdot-chain": "/dotdot/shadow",
    "linked-parents": "/parent/parent/parent{secret}/shadow",
    "chain-of-links": "/chain/shadow",
    "dotdot-in-the-path": "/../../../..{secret}/shadow",
}


@pytest.mark.parametrize("case", sorted(OUT_CASES))
def test_copy_out_through_links_finds_the_apps_file(
    pod: tuple[Nspod, str], secret: Path, tmp_path: Path, case: str
) -> None:
    nspod, name = pod
    copied = nspod("cp", f"{name}:{OUT_CASES[case].format(secret=secret)}", str(tmp_path / "got"))
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "got").read_text() == DECOY


@pytest.mark.parametrize("path", ["/proc/self/root{secret}/shadow", "/proc/1/root{secret}/shadow"])
def test_procs_magic_links_lead_nowhere(
    pod: tuple[Nspod, str], secret: Path, tmp_path: Path, path: str
) -> None:
    nspod, name = pod
    copied = nspod("cp", f"{name}:{path.format(secret=secret)}", str(tmp_path / "got"))
    assert copied.returncode == 254 and copied.stderr.startswith("nspod: "), copied.stderr
    assert not (tmp_path / "got").exists()


def test_a_tree_copied_out_keeps_its_links_as_links(pod: tuple[Nspod, str], tmp_path: Path) -> None:
    nspod, name = pod
    assert nspod("cp", f"{name}:/tree", str(tmp_path)).returncode == 0
    assert (tmp_path / "tree/plain").read_text() == "plain\n"
    assert (tmp_path / "tree/inner").is_symlink()  # a link, not the host file it names here


IN_CASES = {
    "absolute-link": "/abs/planted",
    "dotdot-chain": "/dotdot/planted",
    "linked-parents": "/parent/parent{secret}/planted",
    "chain-of-links": "/chain/planted",
    "over-the-decoy": "/abs/shadow",
    "over-a-link-to-the-secret": "/victim",
}


@pytest.mark.parametrize("case", sorted(IN_CASES))
def test_copy_in_through_links_stays_in_the_app(
    pod: tuple[Nspod, str], secret: Path, tmp_path: Path, case: str
) -> None:
    nspod, name = pod
    (tmp_path / "planted").write_text("planted\n")
    target = IN_CASES[case].format(secret=secret)
    copied = nspod("cp", str(tmp_path / "planted"), f"{name}:{target}")
    assert copied.returncode == 0, copied.stderr
    untouched(secret)
    seen = nspod("exec", name, "--", "cat", target)
    assert seen.stdout == "planted\n", seen.stderr


def test_an_apps_fifo_is_never_opened(pod: tuple[Nspod, str], tmp_path: Path) -> None:
    """A FIFO would hang a reader (out) or a writer (in) with no other end: it is skipped going
    out, and replaced by the file coming in (a device node would be the host's to open)."""
    nspod, name = pod
    out = nspod("cp", f"{name}:/fifo", str(tmp_path / "got"), timeout=30)
    assert out.returncode == 0 and not (tmp_path / "got").exists(), out.stderr
    (tmp_path / "file").write_text("file\n")
    put = nspod("cp", str(tmp_path / "file"), f"{name}:/fifo", timeout=30)
    assert put.returncode == 0, put.stderr
    kind = nspod("exec", name, "--", "stat", "-c", "%F", "/fifo")
    assert kind.stdout.strip() == "regular file", kind.stdout + kind.stderr


def test_a_directory_swapped_for_a_link_never_leads_out(
    pod: tuple[Nspod, str], secret: Path, tmp_path: Path
) -> None:
    nspod, name = pod
    (tmp_path / "payload").mkdir()
    (tmp_path / "payload/pl").write_text("payload\n")
    assert nspod("exec", name, "--", "touch", "/go").returncode == 0
    shapes: set[str] = set()  # what the copies met at /race/d: the directory, the link, or a refusal
    try:
        for round_ in range(6):
            out = tmp_path / f"out{round_}"
            out.mkdir()
            copied = nspod("cp", f"{name}:/race", str(out))
            assert copied.returncode in (0, 254), copied.stderr
            found = [p.read_text() for p in out.rglob("*") if p.is_file() and not p.is_symlink()]
            assert SECRET not in found, found
            d = out / "race/d"
            shapes.add("refused" if copied.returncode else "link" if d.is_symlink() else "dir")
            put = nspod("cp", str(tmp_path / "payload"), f"{name}:/race/d")
            assert put.returncode in (0, 254), put.stderr
            untouched(secret)
    finally:
        nspod("exec", name, "--", "touch", "/stop")
    assert shapes - {"refused"}, shapes  # the app's loop ran: some copies found /race
