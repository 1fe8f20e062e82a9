"""The pure parts of ``exec``, ``kill``, ``port``, ``top`` and ``cp`` (issue #27 item 1): what
each verb makes of its words, and the copy's in-root resolution against crafted trees."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from stage0.api.copying import Location, Owner, copy_in, copy_out, copy_sides, in_root, parse_location
from stage0.api.ports import port_lines
from stage0.api.processes import parse_ids, parse_process
from stage0.api.signals import parse_signal
from stage0.cli.exec import environment
from stage0.cli.top import cpu_time
from stage0.errors import Error, NotFoundError, UsageError
from stage1.abi import AppSpec, PortSpec
from stage1.nspawn.exec_as import Overrides, account_lines, overridden


@pytest.mark.parametrize(
    ("text", "number"),
    [("TERM", 15), ("SIGTERM", 15), ("term", 15), ("15", 15), ("KILL", 9), ("HUP", 1), ("RTMIN+3", 37)],
)
def test_signals_by_name_and_number(text: str, number: int) -> None:
    assert parse_signal(text) == (signal.SIGRTMIN + 3 if text == "RTMIN+3" else number)


@pytest.mark.parametrize("text", ["NOPE", "SIGNOPE", "0", "99", "", "-9", "RTMIN+99", "SIG"])
def test_an_unknown_signal_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_signal(text)


PORTS = (
    PortSpec(name="http", protocol="tcp", port=80, host_port=8080),
    PortSpec(name="dns", protocol="udp", port=53, host_port=5353, host_ip="127.0.0.1"),
    PortSpec(name="v6", protocol="tcp", port=443, host_port=8443, host_ip="::1"),
)


def test_ports_print_as_podman_prints_them() -> None:
    assert port_lines(PORTS) == [
        "80/tcp -> 0.0.0.0:8080",
        "53/udp -> 127.0.0.1:5353",
        "443/tcp -> [::1]:8443",
    ]
    assert port_lines(PORTS, "80") == ["0.0.0.0:8080"]
    assert port_lines(PORTS, "53/udp") == ["127.0.0.1:5353"]
    with pytest.raises(NotFoundError):
        port_lines(PORTS, "53/tcp")
    for bad in ("http", "80/sctp", "0", "70000", "/tcp"):
        with pytest.raises(UsageError):
            port_lines(PORTS, bad)


def test_locations() -> None:
    assert parse_location("web:/etc/passwd") == Location("/etc/passwd", "web", None)
    assert parse_location("web:nginx:/etc") == Location("/etc", "web", "nginx")
    assert parse_location("web:/a:b") == Location("/a:b", "web", None)
    assert parse_location("./x:y") == Location("./x:y")
    assert parse_location("/tmp/a:b") == Location("/tmp/a:b")
    assert parse_location("file") == Location("file")
    for bad in ("web:", ":/x", "web::/x"):
        with pytest.raises(UsageError):
            parse_location(bad)
    with pytest.raises(UsageError):
        copy_sides("a:/x", "b:/y")
    with pytest.raises(UsageError):
        copy_sides("/x", "/y")


def test_in_root_tidies_lexically() -> None:
    assert in_root("/../../etc/shadow") == ("/etc", "shadow")
    assert in_root("a/b/../c") == ("/a", "c")
    assert in_root("/") == ("/", ".")


def test_exec_environment_words() -> None:
    host = {"HOME": "/root"}
    assert environment(["A=1", "HOME", "UNSET", "B="], host) == ["A=1", "HOME=/root", "B="]
    for bad in ("=x", "1A=2", "A B=1"):
        with pytest.raises(UsageError):
            environment([bad], host)


def test_cpu_time_reads_as_ps() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    assert cpu_time(0) == "00:00:00"
    assert cpu_time(ticks * 3725) == "01:02:05"
    assert cpu_time(ticks * (86400 + 1)) == "1-00:00:01"


def test_a_process_from_its_proc_files() -> None:
    stat = "4242 (sleep x) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5555 1000 10 0"
    status = (
        "Name:\tsleep\nUid:\t100001\t100001\t100001\t100001\nGid:\t100002\t100002\t0\t0\nNSpid:\t4242\t7\n"
    )
    process = parse_process(4242, stat, status, b"sleep\x00600\x00", shift=100000)
    assert (process.pod_pid, process.uid, process.host_uid, process.host_gid) == (7, 1, 100001, 100002)
    assert (process.cpu_ticks, process.start_ticks, process.command) == (10, 5555, "sleep 600")
    assert parse_process(9, stat, status, b"").command == "[sleep x]"  # a kernel thread's way


def test_accounts_of_an_image() -> None:
    text = "root:x:0:0::/:/bin/sh\nworker:x:1000:1001::/:/bin/sh\nbroken\n#:x:y:z\n"
    assert parse_ids(text) == {"root": (0, 0), "worker": (1000, 1001)}


def test_exec_overrides_keep_the_apps_confinement() -> None:
    app = AppSpec(
        name="web", rootfs="/r", exec=("/bin/server",), user=1000, group=1000, supplementary_gids=(5,)
    )
    root = overridden(app, Overrides(env=(("A", "1"),), user=(0, 0), workdir="/srv"))
    assert (root.user, root.group, root.supplementary_gids, root.working_directory) == (0, 0, (), "/srv")
    assert root.env == (("A", "1"),)
    assert root.no_new_privileges  # the app had it (a filter, not root): as root it keeps it
    assert overridden(app, Overrides()) is app
    assert Overrides.parse(["A=1=2"], "5", None) == Overrides((("A", "1=2"),), (5, 5), "")
    for env, user, workdir in ((["A"], None, None), ([], "x:1", None), ([], None, "rel")):
        with pytest.raises(Error):
            Overrides.parse(env, user, workdir)


def test_exec_users_are_added_to_the_pods_accounts_once() -> None:
    passwd, group = "root:x:0:0::/root:/bin/sh\n", "root:x:0:\n"
    added = account_lines(passwd, group, 1000, 2000)
    assert added == (
        passwd + "nspod-uid-1000:x:1000:2000::/:/usr/sbin/nologin\n",
        group + "nspod-gid-2000:x:2000:\n",
    )
    assert account_lines(*added, 1000, 2000) == added
    assert account_lines(passwd, group, 0, 0) == (passwd, group)


# --- cp against crafted trees (no pod: the root is a directory of the test's) ---


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, Path]:
    """An app root whose links all aim at ``host``'s secret, which it holds a decoy of."""
    host, root = tmp_path / "host", tmp_path / "root"
    (host / "secret").mkdir(parents=True)
    (host / "secret/shadow").write_text("SECRET")
    decoy = root / str(host / "secret").lstrip("/")
    decoy.mkdir(parents=True)
    (decoy / "shadow").write_text("decoy")
    (root / "abs").symlink_to(host / "secret")
    (root / "up").symlink_to("../" * 10 + str(host / "secret").lstrip("/"))
    (root / "top").symlink_to("/")
    (root / "victim").symlink_to(host / "secret/shadow")
    return host, root


def open_dir(path: Path) -> int:
    return os.open(path, os.O_PATH | os.O_DIRECTORY)


@pytest.mark.parametrize("path", ["/abs/shadow", "/up/shadow", "/top/top/abs/shadow", "/../../abs/shadow"])
def test_copy_out_resolves_inside_the_root(crafted: tuple[Path, Path], tmp_path: Path, path: str) -> None:
    _, root = crafted
    fd = open_dir(root)
    try:
        copy_out(fd, path, str(tmp_path / "got"))
    finally:
        os.close(fd)
    assert (tmp_path / "got").read_text() == "decoy"


@pytest.mark.parametrize("path", ["/abs/new", "/up/new", "/top/abs/shadow", "/victim"])
def test_copy_in_writes_inside_the_root(crafted: tuple[Path, Path], tmp_path: Path, path: str) -> None:
    host, root = crafted
    (tmp_path / "new").write_text("new")
    (tmp_path / "new").chmod(0o4751)
    fd = open_dir(root)
    try:
        copy_in(fd, str(tmp_path / "new"), path, Owner(os.getuid(), os.getgid()))
    finally:
        os.close(fd)
    assert sorted(p.name for p in (host / "secret").iterdir()) == ["shadow"]
    assert (host / "secret/shadow").read_text() == "SECRET"
    if path == "/victim":
        assert not (root / "victim").is_symlink() and (root / "victim").read_text() == "new"
        assert (root / "victim").stat().st_mode & 0o7777 == 0o751  # set-ID bits dropped
