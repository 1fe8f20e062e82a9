"""The command line's contract: help, usage errors (2), nspod's own failures (254 + hint), lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stage0.options import InsecureOption, parse_insecure_options
from tests.conftest import REPO, run_nspod


def test_help_lists_verbs() -> None:
    result = run_nspod("--help")
    assert result.returncode == 0
    assert "version" in result.stdout and "image" in result.stdout and "--insecure-options" in result.stdout


def test_image_help() -> None:
    result = run_nspod("image", "build", "--help")
    assert result.returncode == 0 and "--compression" in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        [],
        ["image"],
        ["--insecure-options=bogus", "version"],
        ["image", "build", "only-one-arg"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    result = run_nspod(*argv)
    assert result.returncode == 2, result
    assert "usage: nspod" in result.stderr
    assert "Traceback" not in result.stderr


def test_nspod_error_is_one_line_with_hint() -> None:
    result = run_nspod("image", "validate", "/nonexistent/x.aci")
    assert result.returncode == 254
    assert result.stderr.splitlines() == [
        "nspod: cannot read /nonexistent/x.aci: No such file or directory",
        "  hint: check the path and its permissions",
    ]
    debug = run_nspod("--debug", "image", "validate", "/nonexistent/x.aci")
    assert debug.returncode == 254 and "Traceback" in debug.stderr


FORCED_BUG = textwrap.dedent("""
    import sys
    import stage0.cli.version as v
    def broken(options, args):
        raise KeyError("forced")
    v.run_version = broken
    from stage0.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("debug", [False, True])
def test_internal_error(debug: bool) -> None:
    argv = [sys.executable, "-c", FORCED_BUG, *(["--debug"] if debug else []), "version"]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 254
    assert "nspod: internal error: KeyError: 'forced'" in result.stderr
    assert "hint: this is a bug in nspod; rerun with --debug" in result.stderr
    assert ("Traceback" in result.stderr) is debug


def test_version() -> None:
    result = run_nspod("version")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "nspod version 0.1.0"
    assert lines[1] == "appc version 0.8.11"
    assert lines[3].startswith("systemd version 2")


def test_version_imports_nothing_heavy() -> None:
    probe = (
        "import sys, contextlib, io; from stage0.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['version'])\n"
        "import json; print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO)},
    ).stdout
    loaded = set(json.loads(out.splitlines()[-1]))
    for heavy in ("jsonschema", "cryptography", "pystemd", "dbus_fast", "zstandard", "tarfile"):
        assert heavy not in loaded, heavy


def _oci_layout(path: Path) -> None:
    """A one-layer OCI image layout, tagged 1, made by hand."""
    import gzip
    import hashlib
    import io
    import tarfile

    def blob(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (path / "blobs/sha256").mkdir(parents=True, exist_ok=True)
        (path / "blobs/sha256" / digest).write_bytes(data)
        return "sha256:" + digest

    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        info = tarfile.TarInfo("hello")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"hi"))
    layer = gzip.compress(tar.getvalue())
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar.getvalue()).hexdigest()]},
    }).encode()  # fmt: skip
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(layer),
                    "size": len(layer)}],
    }).encode()  # fmt: skip
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "1"},
    }]}  # fmt: skip
    (path / "index.json").write_text(json.dumps(index))
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def test_an_oci_fetch_loads_no_appc_schema(tmp_path: Path) -> None:
    """`nspod fetch` of an OCI image leaves the appc schema unloaded (~15 ms a command, issue #26)."""
    _oci_layout(tmp_path / "layout")
    probe = (
        "import sys, json, contextlib, io; from stage0.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['--dir', {str(tmp_path / 'data')!r}, '--insecure-options=image', 'fetch',"
        f" 'oci:{tmp_path / 'layout'}:1']) == 0\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
        env={"PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "stage0.images.oci.pull" in loaded
    assert not {"stage0.schema.image", "stage0.schema.pod", "stage0.images.render"} & loaded


def test_insecure_options_expand() -> None:
    assert parse_insecure_options("none") == frozenset()
    assert parse_insecure_options("image,tls") == {InsecureOption.IMAGE, InsecureOption.TLS}
    assert parse_insecure_options("all-fetch") == {
        InsecureOption.IMAGE,
        InsecureOption.TLS,
        InsecureOption.HTTP,
        InsecureOption.PUBKEY,
    }
    assert InsecureOption.SECCOMP in parse_insecure_options("all")


def test_global_flags_are_parsed() -> None:
    from stage0.cli import build_parser
    from stage0.options import GlobalOptions

    args = build_parser().parse_args(["--dir", "rel/dir", "--insecure-options=http", "version"])
    options = GlobalOptions.from_args(args)
    assert options.dir.startswith("/") and options.dir.endswith("/rel/dir")
    assert options.allows(InsecureOption.HTTP) and not options.allows(InsecureOption.IMAGE)
    assert options.local_config == "/etc/nspod" and options.system_config == "/usr/lib/nspod"


def test_verb_table_matches_the_parsers() -> None:
    """Every verb the groups register is in the table (so the fast path finds it), and no more."""
    import argparse

    from stage0.cli import VERBS, build_parser, requested_verb

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(VERBS)
    assert requested_verb(["--dir", "/x", "--debug", "image", "list"]) == "image"
    assert requested_verb(["--insecure-options", "image", "fetch", "x"]) == "fetch"
    assert requested_verb(["--help"]) is None and requested_verb(["nonsense"]) is None


def test_a_usage_error_found_after_parsing_exits_2() -> None:
    # issue #9/#10: UsageError promised 2 and gave 254
    result = run_nspod("run", "some.aci", "--stop-timeout=soon")
    assert result.returncode == 2, result.stderr
    assert "bad --stop-timeout" in result.stderr and "hint:" in result.stderr


def test_dbus_errors_translate_whether_pystemd_gives_bytes_or_str() -> None:
    # issue #9 defect 5: an AttributeError ('str' has no 'decode') instead of an answer
    from stage1.systemd import BusUnavailable, UnitNotFound, translate

    class DBusFileNotFoundError(Exception):
        err_name = "org.freedesktop.DBus.Error.FileNotFound"
        err_message = "No such file or directory"

    class DBusNoSuchUnitError(Exception):
        err_name = b"org.freedesktop.systemd1.NoSuchUnit"
        err_message = b"Unit x.service not loaded."

    assert isinstance(translate(DBusFileNotFoundError(), "connecting"), BusUnavailable)
    error = translate(DBusNoSuchUnitError(), "GetUnit")
    assert isinstance(error, UnitNotFound) and "x.service not loaded" in str(error)


def test_a_non_root_list_is_a_plain_answer() -> None:
    # issue #9 defect 5: a PermissionError reported as a bug
    import os
    import shutil
    import tempfile
    from pathlib import Path

    if os.geteuid() != 0:
        pytest.skip("needs root to make a store another user cannot read")
    top = Path(tempfile.mkdtemp(dir="/tmp"))
    top.chmod(0o755)  # the way to the store is open; the store's pods/ dirs are not (0700)
    data = top / "data"
    assert run_nspod("--dir", str(data), "gc").returncode == 0  # makes pods/<state>/
    for package in ("stage0", "stage1"):  # a copy nobody can read, wherever the checkout is
        shutil.copytree(REPO / package, top / package)
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    result = subprocess.run(
        [*argv, sys.executable, "-m", "stage0", "--dir", str(data), "list"],
        capture_output=True, text=True, env={"PYTHONPATH": str(top), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    shutil.rmtree(top)
    assert result.returncode == 254, result.stderr
    assert "permission denied" in result.stderr and "internal error" not in result.stderr, result.stderr


def test_app_lines_lose_the_uptime_stamp_and_keep_the_app() -> None:
    from stage1.journal import app_line

    assert app_line(b"[ 5802.914365] web[8]: GET / 200") == b"web: GET / 200"
    assert app_line(b"[   1.000001] my-app[100]: a: b") == b"my-app: a: b"
    assert app_line(b"Container web failed with error code 1.") == b"Container web failed with error code 1."
    coloured = app_line(b"[ 1.5] web[8]: hi", color=True)
    assert coloured.startswith(b"\x1b[") and coloured.endswith(b"\x1b[0m: hi")


def test_every_option_of_every_verb_says_what_it_does() -> None:
    import argparse

    from stage0.cli import build_parser, subparsers

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if action.option_strings and not action.help and not isinstance(action, argparse._HelpAction):
                missing.append(f"{parser.prog} {'/'.join(action.option_strings)}")
        sub = subparsers(parser)
        for child in dict.fromkeys(sub.choices.values() if sub else []):
            walk(child)

    walk(build_parser())
    assert missing == [], missing


def test_an_unknown_flag_gets_the_verbs_own_usage() -> None:
    result = run_nspod("image", "list", "--colour")
    assert result.returncode == 2
    assert "usage: nspod image list" in result.stderr and "--colour" in result.stderr


def test_isolator_flags_follow_their_image() -> None:
    from stage0.cli.app_flags import parse_apps

    flags = ["--memory=512M", "--caps-retain=CAP_CHOWN,CAP_KILL"]
    (app,) = parse_apps(["img", *flags, "--supplementary-gids=5,6", "--oom-score-adj", "-100"])
    assert [str(i.name) for i in app.overrides] == [
        "resource/memory",
        "os/linux/capabilities-retain-set",
        "os/linux/oom-score-adj",
    ]
    assert app.supplementary_gids == (5, 6)


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--memory=lots", "bad --memory 'lots'"),
        ("--cpu-shares=1", "bad --cpu-shares '1'"),
        ("--oom-score-adj=x", "bad --oom-score-adj 'x': not a number"),
        ("--caps-retain=CAP_NOPE", "bad --caps-retain 'CAP_NOPE'"),
        ("--supplementary-gids=a", "bad --supplementary-gids 'a'"),
    ],
)
def test_bad_isolator_flags_are_usage_errors(flag: str, message: str) -> None:
    result = run_nspod("--dir=/nonexistent", "run", "img.aci", flag)
    assert result.returncode == 2 and message in result.stderr, result.stderr
