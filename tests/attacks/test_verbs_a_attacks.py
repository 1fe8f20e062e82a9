"""Issue #27 item 1's verbs (exec, top, cp) against a malicious app: an image that crafts what
those verbs read (its process names, its /etc/passwd, its files' shapes and sizes) and an app that
changes them while the verbs run. Root on the host runs each verb: what the app crafts must neither
reach the operator's terminal raw, nor make a copy out fill or write the host beyond its request,
nor let ``exec``'s overrides lead out of the app's confinement. One pod serves every test."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image

pytestmark = pytest.mark.systemd
SECRET, DECOY = "HOST-SECRET\n", "decoy\n"
ESC = "\x1b]0;PWNED\x07\x1b[2J"  # a terminal's title set, then its screen cleared
SPARSE = 1 << 40  # 1 TiB of holes: copied densely, it would fill the host's disk
DEPTH = 1500  # deeper than Python's recursion limit

APP = (
    "sh /tmp/*.sh & "  # a process whose command line holds escape sequences
    "mkfifo /wake; (echo x > /wake; touch /woken) & "  # tells whether anyone opened /wake
    "truncate -s {sparse} /sparse; printf data >> /sparse; "
    "mkdir -p /deep; cd /deep; i=0; while [ $i -lt {depth} ]; do mkdir a; cd a; i=$((i+1)); done; cd /; "
    "mkdir -p /suid; cp /bin/busybox /suid/sh; chmod 4755 /suid/sh; "
    "echo leased > /leased-out; echo leased > /leased-in; leasehold /leased-out /leased-in > /leases & "
    "touch /ready; sleep 600"
)


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("verbsecret")
    (where / "shadow").write_text(SECRET)
    return where


@pytest.fixture(scope="module")
def pod(
    tmp_path_factory: pytest.TempPathFactory, secret: Path, programs: dict[str, Path]
) -> Iterator[tuple[Nspod, str]]:
    base = tmp_path_factory.mktemp("verbsattack")
    image = attack_image(
        base,
        ["/bin/sh", "-c", APP.format(sparse=SPARSE, depth=DEPTH)],
        programs={"leasehold": programs["leasehold"]},
        files={
            f"/tmp/{ESC}x.sh": "sleep 600\n",
            "/etc/passwd": f"{ESC}evil:x:0:0::/:/bin/sh\nworker:x:1000:1000::/:/bin/sh\n",
            f"{secret}/shadow": DECOY,
        },
        links={
            "bin/truncate": "busybox",
            "pod": "/proc/1/root",
            "out": "../" * 12 + str(secret).lstrip("/"),
        },
    )
    nspod = Nspod(base / "data")
    ran = nspod("run", "--detach", "--name=verbs-attack", str(image))
    assert ran.returncode == 0, ran.stderr
    try:
        waited = nspod("exec", "verbs-attack", "--", "sh", "-c", "while [ ! -e /ready ]; do sleep 0.1; done")
        assert waited.returncode == 0, waited.stderr
        yield nspod, "verbs-attack"
    finally:
        nspod("stop", "--force", "verbs-attack")
        # its tree deeper than Python's stack: removed whole (it once ended shutil.rmtree's removal)
        removed = nspod("rm", "verbs-attack")
        assert removed.returncode == 0, removed.stderr


def test_top_never_prints_the_apps_escape_sequences(pod: tuple[Nspod, str]) -> None:
    """An app's command lines and user names are its own text: top shows them escaped, or the
    operator's terminal would obey them (a title, a cleared screen, a forged line)."""
    nspod, name = pod
    top = nspod("top", name)
    assert top.returncode == 0, top.stderr
    assert "x.sh" in top.stdout and "evil" in top.stdout, top.stdout
    assert not any(c < " " and c != "\n" for c in top.stdout), repr(top.stdout)


def test_a_sparse_file_copied_out_keeps_its_holes(pod: tuple[Nspod, str], tmp_path: Path) -> None:
    nspod, name = pod
    copied = nspod("cp", f"{name}:/sparse", str(tmp_path / "sparse"), timeout=30)
    assert copied.returncode == 0, copied.stderr
    info = (tmp_path / "sparse").stat()
    assert info.st_size == SPARSE + 4 and info.st_blocks * 512 < 1 << 20, info
    with open(tmp_path / "sparse", "rb") as file:
        file.seek(SPARSE)
        assert file.read() == b"data"


def test_a_tree_too_deep_is_refused_in_one_line(pod: tuple[Nspod, str], tmp_path: Path) -> None:
    nspod, name = pod
    copied = nspod("cp", f"{name}:/deep", str(tmp_path / "deep"), timeout=60)
    assert copied.returncode == 254, copied.stderr
    assert copied.stderr.startswith("nspod: ") and "internal error" not in copied.stderr, copied.stderr
    assert "directories deep" in copied.stderr, copied.stderr


def test_a_leased_file_never_stalls_a_copy(pod: tuple[Nspod, str], tmp_path: Path) -> None:
    """The app holds write leases on its files (an owner may): a copy either way fails at once
    (O_NONBLOCK's EWOULDBLOCK) instead of waiting out each lease's break (45 s a file)."""
    nspod, name = pod
    leases = nspod(
        "exec", name, "--", "sh", "-c", "while [ $(wc -l < /leases) -lt 2 ]; do sleep 0.1; done; cat /leases"
    )
    assert leases.stdout == "lease:/leased-out HELD\nlease:/leased-in HELD\n", leases.stdout + leases.stderr
    out = nspod("cp", f"{name}:/leased-out", str(tmp_path / "got"), timeout=20)
    assert out.returncode in (0, 254) and "Traceback" not in out.stderr, out.stderr
    (tmp_path / "file").write_text("file\n")
    put = nspod("cp", str(tmp_path / "file"), f"{name}:/leased-in", timeout=20)
    assert put.returncode in (0, 254) and "Traceback" not in put.stderr, put.stderr


def test_set_id_bits_never_reach_the_host(pod: tuple[Nspod, str], tmp_path: Path) -> None:
    nspod, name = pod
    copied = nspod("cp", f"{name}:/suid", str(tmp_path))
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "suid/sh").stat().st_mode & 0o7777 == 0o755


def test_exec_w_through_a_link_stays_in_the_app(pod: tuple[Nspod, str]) -> None:
    """-w resolves in the app's root, as its own chdir would: a link out lands on the decoy, /proc's
    magic links lead nowhere the app could not go itself, and a path is never unit-file text."""
    nspod, name = pod
    seen = nspod("exec", "-w", "/out", name, "--", "cat", "shadow")
    assert seen.stdout == DECOY, seen.stdout + seen.stderr
    for workdir in ("/proc/1/root", "/pod", "/proc/self/cwd/proc/1/cwd"):  # the pod's tree
        seen = nspod("exec", "-w", workdir, name, "--", "ls", "opt")
        assert seen.returncode == 254 and "stage2" not in seen.stdout, seen.stdout + seen.stderr
    for workdir in ("/tmp\nUser=0", "/tmp\n[Service]\nUser=0"):
        ran = nspod("exec", "-w", workdir, name, "--", "id", "-u")
        assert ran.returncode == 254 and ran.stderr.startswith("nspod: "), ran.stdout + ran.stderr


def test_exec_e_values_never_become_more_variables(pod: tuple[Nspod, str]) -> None:
    nspod, name = pod
    for value in ("x\nB=injected", 'x" "B=injected', "x B=injected", "x' 'B=injected"):
        seen = nspod("exec", "-e", f"A={value}", name, "--", "sh", "-c", 'printf "%s|%s" "$A" "$B"')
        assert seen.returncode == 0, seen.stderr
        assert seen.stdout == f"{value}|", repr(seen.stdout)


def test_exec_u_refuses_ids_systemd_reserves(pod: tuple[Nspod, str]) -> None:
    """(uid_t)-1 means "unchanged" to setresuid(2): never a user to run as."""
    nspod, name = pod
    for user in ("4294967295", "0:4294967295", "99999999999999999999"):
        ran = nspod("exec", "-u", user, name, "--", "id", "-u")
        assert ran.returncode == 254 and ran.stderr.startswith("nspod: "), ran.stdout + ran.stderr


def test_exec_u_of_the_apps_crafted_passwd(pod: tuple[Nspod, str]) -> None:
    """The app's /etc/passwd and /etc/group name users for ``-u``, read by root on the host: a
    FIFO there is never opened (its open would wake the app's writer; a device node's would be the
    host driver's), nor a link to /proc read, and a name resolves to the IDs the app gives it."""
    nspod, name = pod
    assert nspod("exec", "-u", "worker", name, "--", "id", "-u").stdout == "1000\n"
    made = nspod("exec", name, "--", "sh", "-c", "rm /etc/group; ln -s /wake /etc/group")
    assert made.returncode == 0, made.stderr
    ran = nspod("exec", "-u", "worker:wheel", name, "--", "id", timeout=30)
    assert ran.returncode == 254 and "no group" in ran.stderr, ran.stderr
    woken = nspod("exec", name, "--", "sh", "-c", "sleep 0.3; test -e /woken")
    assert woken.returncode == 1, "nspod opened the app's FIFO"
    made = nspod("exec", name, "--", "sh", "-c", "rm /etc/group; ln -s /proc/1/status /etc/group")
    assert made.returncode == 0, made.stderr
    ran = nspod("exec", "-u", "worker:Uid", name, "--", "id", timeout=30)
    assert ran.returncode == 254 and "no group" in ran.stderr, ran.stderr


def test_concurrent_exec_u_each_get_their_user(pod: tuple[Nspod, str]) -> None:
    """Each new user is added to the pod's accounts (read, then rewritten): concurrent ones must not
    lose each other's line, or systemd fails the command 217/USER."""
    nspod, name = pod
    users = [str(3000 + i) for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(len(users)) as pool:
        runs = list(pool.map(lambda u: nspod("exec", "-u", u, name, "--", "id", "-u"), users))
    assert [r.stdout for r in runs] == [f"{u}\n" for u in users], [r.stderr for r in runs]


def test_an_images_working_directory_never_leads_out(tmp_path: Path) -> None:
    """The image's workingDirectory is a link to /proc/1/root: the app (and every command entered
    into it) would start in the pod's own tree, relative paths reaching what its root hides, had
    systemd entered it (with every capability). nspod-pidns --chdir enters it as the app, whose
    own chdir the kernel refuses there: the app never runs (200, systemd's CHDIR), as with any
    working directory it may not enter."""
    image = attack_image(
        tmp_path,
        ["/bin/sh", "-c", "ls opt; sleep 600"],
        links={"pod": "/proc/1/root"},
        app={"workingDirectory": "/pod"},
    )
    nspod = Nspod(tmp_path / "data")
    ran = nspod("run", "--detach", "--name=workdir-attack", str(image))
    try:
        assert ran.returncode == 200 and "exit code 200" in ran.stderr, ran.stdout + ran.stderr
        logs = nspod("logs", "workdir-attack")
        assert "changing to the working directory /pod: Permission denied" in logs.stdout, logs.stdout
        assert "stage2" not in logs.stdout, logs.stdout
    finally:
        nspod("stop", "--force", "workdir-attack")
        nspod("rm", "workdir-attack")
