"""podman's habits on ``nspod run|prepare`` (issue #27, item 5): short flags read into the
requests rkt's flags make, ``run IMAGE /COMMAND ARGS`` told apart from rkt's ``run IMAGE IMAGE``,
and every bad form a one-line usage error (exit 2) before anything is made."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stage0.cli import build_parser
from stage0.cli.app_flags import is_image_file, parse_apps
from stage0.errors import UsageError
from stage0.pods.network import PortRequest, port_specs
from stage0.pods.podman import parse_publish, split_user, split_volumes
from stage1.abi import NetworkSpec, VolumeSpec
from tests.conftest import run_nspod


def request(*argv: str) -> tuple[argparse.Namespace, object]:
    from stage0.cli.run import _request

    args = build_parser(["run"]).parse_args(["run", *argv])
    return args, _request(args)


def test_short_flags_are_rkts_flags() -> None:
    args, pod = request("-d", "-e", "A=1", "--env=B=2", "--set-env=C=3", "--name=web", "img.aci")
    assert args.detach and args.set_env == ["A=1", "B=2", "C=3"]
    assert pod.set_env == (("A", "1"), ("B", "2"), ("C", "3")) and pod.name == "web"  # type: ignore[attr-defined]
    args = build_parser(["run"]).parse_args(["run", "-it", "--rm", "img.aci"])
    assert args.interactive and args.tty and args.rm


def test_v_is_a_host_volume_mounted_in_every_app() -> None:
    _, pod = request("-v", "/srv/a:/a", "-v=/srv/b:/b:ro", "--volume=t,kind=empty", "img.aci")
    assert pod.volumes == (  # type: ignore[attr-defined]
        VolumeSpec(name="t", kind="empty"),
        VolumeSpec(name="vol-1", kind="host", source="/srv/a"),
        VolumeSpec(name="vol-2", kind="host", source="/srv/b", read_only=True),
    )
    assert pod.mounts == (("vol-1", "/a", False), ("vol-2", "/b", True))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data:/a", "'data' is a named volume"),
        ("./data:/a", "'./data' is a relative path"),
        ("/srv:a", "must be absolute"),
        ("/srv", "must be absolute"),
        ("/srv:/a:z", "options 'z'"),
        ("/srv:/a:ro,rw", "options 'ro,rw'"),
    ],
)
def test_bad_v(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        split_volumes([text])


@pytest.mark.parametrize(
    ("text", "port"),
    [
        ("8080:80", PortRequest("", 8080, "", port=80)),
        ("8080:80/udp", PortRequest("", 8080, "", port=80, protocol="udp")),
        ("127.0.0.1:8080:80", PortRequest("", 8080, "127.0.0.1", port=80)),
        ("[::1]:8080:80/tcp", PortRequest("", 8080, "::1", port=80)),
    ],
)
def test_publish(text: str, port: PortRequest) -> None:
    assert parse_publish(text) == port


@pytest.mark.parametrize(
    "text", ["80", "http:8080", "8080:http", ":8080:80", "8080:80/sctp", "x:8080:80", "0:80", "8080:70000",
             "1.2.3.4::80", "::1:8080:80", "a:b:c:d"],
)  # fmt: skip
def test_bad_publish(text: str) -> None:
    with pytest.raises(UsageError, match="bad -p"):
        parse_publish(text)


def test_a_port_by_number_is_the_apps_port_of_that_number_else_made_up() -> None:
    nets = (NetworkSpec(name="default", config="{}"),)
    offered = {"http": ("tcp", 80), "dns": ("udp", 53)}
    asked = (parse_publish("8080:80"), parse_publish("5353:53/udp"), parse_publish("9090:90"))
    specs = port_specs(asked, offered, nets)
    assert [(s.name, s.protocol, s.port, s.host_port) for s in specs] == [
        ("http", "tcp", 80, 8080),
        ("dns", "udp", 53, 5353),
        ("tcp-90", "tcp", 90, 9090),
    ]
    twice = port_specs((parse_publish("8080:80"), parse_publish("8081:80")), offered, nets)
    assert [(s.name, s.port, s.host_port) for s in twice] == [("http", 80, 8080), ("tcp-80-8081", 80, 8081)]
    with pytest.raises(UsageError, match="forwarded twice"):
        port_specs((parse_publish("8080:80"), parse_publish("8080:90")), offered, nets)
    with pytest.raises(UsageError, match="has none"):
        port_specs(asked, offered, None)


def test_u_and_w_reach_every_app_unless_the_app_says() -> None:
    _, pod = request("-u", "1000:100", "-w", "/srv", "a.aci", "---", "b.aci", "--user=root", "-w", "/b")
    a, b = pod.apps  # type: ignore[attr-defined]
    assert (a.user, a.group, a.working_dir) == ("1000", "100", "/srv")
    assert (b.user, b.group, b.working_dir) == ("root", None, "/b")
    assert split_user("www") == ("www", None)
    for bad in ("", ":1", "a:", "a:b:c"):
        with pytest.raises(UsageError, match="bad -u"):
            split_user(bad)
    with pytest.raises(UsageError, match="bad -w"):
        request("-w", "rel", "a.aci")


def never(word: str) -> bool:
    return False


def test_a_path_after_an_image_is_its_command() -> None:
    (app,) = parse_apps(["img.aci", "/bin/sh", "-c", "exit 7"], never)
    assert (app.exec, app.args) == ("/bin/sh", ("-c", "exit 7"))
    # flags between image and command are the app's; words after the command are its arguments
    one, two = parse_apps(
        ["a.aci", "-e", "K=V", "-u", "1:2", "/bin/echo", "--", "-e", "---", "b.aci"], never
    )
    assert (one.exec, one.args, one.environment, one.user, one.group) == (
        "/bin/echo", ("--", "-e"), (("K", "V"),), "1", "2",
    )  # fmt: skip
    assert two.image == "b.aci" and two.exec is None


def test_rkts_multi_image_syntax_is_kept() -> None:
    apps = parse_apps(["IMG1", "--exec=/bin/x", "--", "a", "---", "IMG2", "--environment=K=V"], never)
    assert [(a.image, a.exec, a.args) for a in apps] == [("IMG1", "/bin/x", ("a",)), ("IMG2", None, None)]
    apps = parse_apps(["a.aci", "/x/b.aci", "example.com/c:1", "docker://d", "--", "x"], never)
    assert [a.image for a in apps] == ["a.aci", "/x/b.aci", "example.com/c:1", "docker://d"]
    assert [a.image for a in parse_apps(["a.aci", "---", "bare"], never)] == ["a.aci", "bare"]
    # after --exec, a path is the next image (rkt's); the command is --exec's
    assert [a.image for a in parse_apps(["a.aci", "--exec=/bin/x", "/x/b"], never)] == ["a.aci", "/x/b"]


def test_a_bare_word_after_an_image_is_ambiguous() -> None:
    with pytest.raises(UsageError, match="'echo' after an image: a command or another image") as error:
        parse_apps(["img.aci", "echo", "hi"], never)
    assert "/bin/echo" in str(error.value.hint) and "IMAGE --- echo" in str(error.value.hint)
    with pytest.raises(UsageError, match="unknown option -x after an image"):
        parse_apps(["img.aci", "-x"], never)


def test_an_existing_archive_is_an_image_a_program_is_not(tmp_path: Path) -> None:
    (tmp_path / "img").write_bytes(b"\x1f\x8b\x08rest")
    (tmp_path / "script").write_text("#!/bin/sh\nexit 0\n")
    tar = bytearray(512)
    tar[257:262] = b"ustar"
    (tmp_path / "plain").write_bytes(bytes(tar))
    assert is_image_file(str(tmp_path / "img")) and is_image_file(str(tmp_path / "plain"))
    assert is_image_file("/nowhere/x.aci")
    assert not is_image_file(str(tmp_path / "script")) and not is_image_file("/bin/sh")
    assert not is_image_file(str(tmp_path)) and not is_image_file("/nowhere/bin/app")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-p", "http:8080"], "bad -p 'http:8080'"),
        (["-v", "rel:/a"], "bad -v 'rel:/a'"),
        (["-e", "NAME"], "bad -e/--set-env 'NAME'"),
        (["-u", "a:"], "bad -u"),
    ],
)
def test_bad_input_is_a_usage_error_before_anything(argv: list[str], message: str) -> None:
    ran = run_nspod("--dir=/nonexistent", "run", *argv, "no-such-image.aci", "/bin/true")
    assert ran.returncode == 2, ran.stderr
    assert message in ran.stderr and "no such" not in ran.stderr.lower(), ran.stderr
    assert ran.stderr.splitlines()[0].startswith("nspod: ")


def test_podmans_flags_save_as_a_pod_file_that_reads_back() -> None:
    from stage0.pods.podfile import parse, render

    _, pod = request(
        "-e", "A=1", "-v", "/srv:/srv:ro", "-u", "1:2", "-w", "/w", "img.aci", "/bin/sh", "-c", "x"
    )
    (app,) = parse(render(pod), "web.toml", "web").request.apps  # type: ignore[arg-type]
    assert (app.exec, app.args, app.user, app.group, app.working_dir) == (
        "/bin/sh",
        ("-c", "x"),
        "1",
        "2",
        "/w",
    )
    assert app.mounts == (("vol-1", "/srv", True),)


def test_p_saves_as_publish_and_reads_back() -> None:
    from stage0.pods.podfile import parse, render

    _, pod = request("-p", "8080:80", "-p", "[::1]:5353:53/udp", "--port=http:9090", "img.aci")
    text = render(pod)  # type: ignore[arg-type]
    assert 'port = ["http:9090"]' in text and 'publish = ["8080:80/tcp", "[::1]:5353:53/udp"]' in text
    assert parse(text, "web.toml", "web").request.ports == pod.ports  # type: ignore[attr-defined]
