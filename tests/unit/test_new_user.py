"""What a new user hit in the first hour (issue #23 item 16): docs and parser agree, and the forms
the README and rkt users write are taken."""

from __future__ import annotations

import subprocess

import pytest

from stage0.cli import build_parser
from stage0.cli.args import duration
from stage0.options import GlobalOptions, InsecureOption
from stage0.pods.podfile import SERVICE_KEYS, UNIT_KEYS
from tests.conftest import REPO, run_nspod


def test_the_pod_file_page_lists_every_service_key() -> None:
    page = (REPO / "packaging/man/nspod.pod.5").read_text().replace("\\-", "-")
    section = page.split(".SH [service] KEYS", 1)[1].split(".SH ", 1)[0]
    missing = [key for key in (*UNIT_KEYS, *SERVICE_KEYS) if key not in section]
    assert missing == []
    assert "nspod pod install" in section


def test_run_help_says_the_dns_default() -> None:
    text = " ".join(run_nspod("run", "--help").stdout.split())
    assert "the first network's nameservers, else the host's /etc/resolv.conf" in text
    assert "default: the image's own files" not in text


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--insecure-options=image,capabilities", "x"],
        ["prepare", "--insecure-options=image,capabilities", "x"],
        ["--insecure-options=image", "run", "--insecure-options=capabilities", "x"],
        ["fetch", "--insecure-options=image,capabilities", "x"],
        ["app", "add", "--insecure-options=image,capabilities", "pod", "x"],
    ],
)
def test_insecure_options_after_the_verb(argv: list[str]) -> None:
    """rkt takes `rkt run --insecure-options=…`; so does nspod (the README's rkt table says so)."""
    args, extra = build_parser(argv).parse_known_args(argv)
    assert extra == []
    assert {InsecureOption.IMAGE, InsecureOption.CAPABILITIES} <= GlobalOptions.from_args(args).insecure


@pytest.mark.parametrize(
    ("argv", "pod", "timeout"),
    [
        (["status", "--wait", "web"], "web", 0.0),
        (["status", "--wait", "3f2a9c1e"], "3f2a9c1e", 0.0),
        (["status", "--wait-ready", "web"], "web", 0.0),
        (["status", "--wait", "30s", "web"], "web", 30.0),
        (["status", "--wait=1m", "web"], "web", 60.0),
        (["status", "web", "--wait"], "web", 0.0),
    ],
)
def test_status_wait_takes_a_pod_name(argv: list[str], pod: str, timeout: float) -> None:
    from stage0.cli.args import wait_timeout

    args, _ = build_parser(argv).parse_known_args(argv)
    flag = "wait_ready" if "--wait-ready" in argv else "wait"
    assert (wait_timeout(args, flag), args.uuid) == (timeout, pod)


def test_status_wait_refuses_a_bad_timeout() -> None:
    done = run_nspod("status", "--wait", "soon", "web")
    assert done.returncode == 2, done.stderr
    assert "bad duration 'soon'" in done.stderr


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("90", 90.0), ("0s", 0.0), ("1h30m", 5400.0)])
def test_durations_take_bare_seconds(text: str, seconds: float) -> None:
    assert duration(text) == seconds
    argv = ["gc", f"--grace-period={text}"]
    assert build_parser(argv).parse_args(argv).grace_period == seconds


def test_make_install_makes_the_pod_file_directory() -> None:
    done = subprocess.run(["make", "-n", "install"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "install -d -m 0755 /etc/nspod/pods" in done.stdout.splitlines()
    assert "install -d $(PKG)/etc/nspod/pods" in (REPO / "packaging/debian/rules").read_text()


def test_the_registration_socket_goes_when_stopped() -> None:
    unit = (REPO / "units/nspod-metadata-register.socket").read_text().splitlines()
    assert "RemoveOnStop=yes" in unit
