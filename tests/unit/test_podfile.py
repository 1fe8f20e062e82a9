"""Pod files: parsing, errors naming file and key, drop-ins, and --save-as writing one that reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from stage0.pods.podfile import PodFileError, drop_in, parse
from tests.conftest import run_nspod

GOOD = """
hostname = "web.example"
environment = { TZ = "UTC" }

[[app]]
image = "example.com/web:1.0"
name = "web"
exec = "/usr/sbin/httpd"
args = ["-f", "-p", "80"]
environment = { PORT = "80" }
user = "www-data"
working-directory = "/srv"

[[app]]
image = "sha512-0123"

[service]
Restart = "on-failure"
After = ["pod@db.service", "network.target"]
MemoryMax = "512M"
TasksMax = 100
"""


def test_good_file() -> None:
    pod = parse(GOOD, "/etc/nspod/pods/web.toml", "web")
    assert pod.request.hostname == "web.example" and pod.request.set_env == (("TZ", "UTC"),)
    app = pod.request.apps[0]
    assert (app.image, app.name, app.exec, app.args, app.user, app.working_dir) == (
        "example.com/web:1.0",
        "web",
        "/usr/sbin/httpd",
        ("-f", "-p", "80"),
        "www-data",
        "/srv",
    )
    assert pod.request.apps[1].args is None
    assert drop_in(pod).splitlines()[1:] == [
        "",
        "[Unit]",
        "After=pod@db.service network.target",
        "",
        "[Service]",
        "Restart=on-failure",
        "MemoryMax=512M",
        "TasksMax=100",
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[[app]]\nimage = 'x'\nexecc = '/bin/true'\n", "/app/0"),
        ("[[app]]\nimage = 'x'\nname = 'Web'\n", "/app/0/name"),
        ("[[app]]\nimage = 'x'\nargs = '-f'\n", "/app/0/args"),
        ("[[app]]\nimage = 'x'\nworking-directory = 'srv'\n", "/app/0/working-directory"),
        ("hostname = 'x'\n", "/app"),
        ("[[app]]\nimage = 'x'\n[service]\nExecStart = '/bin/evil'\n", "/service/ExecStart"),
        ("[[app]]\nimage = 'x'\n[service]\nAfter = 3.5\n", "/service/After"),
        ("[[app]\nimage = 'x'\n", "not valid TOML"),
    ],
)
def test_errors_name_file_and_key(text: str, where: str) -> None:
    with pytest.raises(PodFileError) as caught:
        parse(text, "/etc/nspod/pods/bad.toml", "bad")
    assert caught.value.message.startswith("/etc/nspod/pods/bad.toml: ")
    assert where in caught.value.message


def test_save_as_writes_a_file_that_reads_back(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    args = [
        "--local-config",
        str(etc),
        "run",
        "--hostname=h",
        "--set-env=A=1",
        "--save-as=web",
        "--volume=data,kind=host,source=/srv/data,readOnly=true",
        "--volume=tmp,kind=empty,mode=1777",
        "--mount=volume=tmp,target=/tmp/x",
        "example.com/web:1.0",
        "--name=web",
        "--exec=/bin/httpd",
        "--environment=B=2",
        "--mount=volume=data,target=/data",
        "--",
        "-f",
        "x y",
    ]
    saved = run_nspod(*args)
    assert saved.returncode == 0, saved.stderr
    path = Path(saved.stdout.strip())
    assert path == etc / "pods/web.toml"
    pod = parse(path.read_text(), str(path), "web")
    app = pod.request.apps[0]
    assert [(v.name, v.kind, v.read_only, v.mode) for v in pod.request.volumes] == [
        ("data", "host", True, 0o755),
        ("tmp", "empty", False, 0o1777),
    ]
    assert app.mounts == (("tmp", "/tmp/x", False), ("data", "/data", False))
    assert (app.name, app.exec, app.args, app.environment) == (
        "web",
        "/bin/httpd",
        ("-f", "x y"),
        (("B", "2"),),
    )
    assert pod.request.set_env == (("A", "1"),) and pod.request.hostname == "h"
    again = run_nspod(*args)
    assert again.returncode == 254 and "already exists" in again.stderr
    validated = run_nspod("pod", "validate", str(path))
    assert validated.returncode == 0


def test_volumes_and_mounts() -> None:
    pod = parse(
        """
[[volume]]
name = "data"
kind = "host"
source = "/srv/data"
read-only = true

[[volume]]
name = "scratch"
kind = "empty"
mode = "1777"

[[app]]
image = "x"
mounts = [{ volume = "data", path = "/data" }, { volume = "scratch", path = "/tmp/s", read-only = false }]
""",
        "p.toml",
        "p",
    )
    data, scratch = pod.request.volumes
    assert (data.kind, data.source, data.read_only) == ("host", "/srv/data", True)
    assert (scratch.kind, scratch.mode) == ("empty", 0o1777)
    assert pod.request.apps[0].mounts == (("data", "/data", False), ("scratch", "/tmp/s", False))
    with pytest.raises(PodFileError, match="/volume/0/source"):
        parse('[[volume]]\nname = "d"\nkind = "host"\n[[app]]\nimage = "x"\n', "p.toml", "p")


def test_app_isolators_replace_the_images() -> None:
    pod = parse(
        '[[app]]\nimage = "x"\nisolators = [{ name = "resource/memory", value = { limit = "1Gi" } }]\n',
        "p.toml",
        "p",
    )
    assert [str(i.name) for i in pod.request.apps[0].isolators or ()] == ["resource/memory"]
    assert parse('[[app]]\nimage = "x"\n', "p.toml", "p").request.apps[0].isolators is None
    with pytest.raises(PodFileError, match=r"p.toml: /app/0/isolators/0/value/limit"):
        parse(
            '[[app]]\nimage = "x"\nisolators = [{ name = "resource/memory", value = { limit = "1GB" } }]\n',
            "p.toml",
            "p",
        )


PROFILE_FLAGS = [
    "--memory=512M", "--cpu=500m", "--cpu-shares=512", "--oom-score-adj=-100",
    "--caps-retain=CAP_CHOWN,CAP_KILL", "--seccomp=mode=remove,errno=ENOSYS,sysfs,@systemd/mount",
    "--supplementary-gids=5,6", "--readonly-rootfs",
]  # fmt: skip


def test_save_as_keeps_the_profile_flags_and_what_was_relaxed(tmp_path: Path) -> None:
    base = ["--local-config", str(tmp_path), "--insecure-options=seccomp,image"]
    saved = run_nspod(*base, "run", "--save-as=web", "example.com/web:1.0", *PROFILE_FLAGS)
    assert saved.returncode == 0, saved.stderr
    path = Path(saved.stdout.strip())
    text = path.read_text()
    assert 'caps-retain = ["CAP_CHOWN", "CAP_KILL"]' in text and "oom-score-adj = -100" in text, text
    pod = parse(text, str(path), "web")
    (app,) = pod.request.apps
    assert app.flags == tuple(tuple(f.split("=", 1)) for f in PROFILE_FLAGS[:6])
    assert (app.supplementary_gids, app.read_only_rootfs) == ((5, 6), True)
    assert pod.request.relaxed == ("seccomp",)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("memory = 'lots'", "/app/0/memory: bad --memory 'lots'"),
        ("seccomp = 'mode=keep,read'", "/app/0/seccomp: bad --seccomp"),
        ("caps-remove = ['CAP_NOPE']", "/app/0/caps-remove"),
        ("readonly-rootfs = 'yes'", "/app/0/readonly-rootfs"),
    ],
)
def test_bad_profile_keys_name_file_and_key(line: str, message: str) -> None:
    with pytest.raises(PodFileError, match=message):
        parse(f"[[app]]\nimage = 'x'\n{line}\n", "/etc/nspod/pods/bad.toml", "bad")
