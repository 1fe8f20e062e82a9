"""Health checks, purely: the declarations (image annotations, an OCI Healthcheck, the pod file,
the app flags) merged and checked, and the state rules the pod's check program applies."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from stage0.cli.app_flags import parse_apps
from stage0.errors import ErrorKind, UsageError
from stage0.pods.health import duration, health_spec, oci_annotations, read_health
from stage0.pods.podfile import PodFileError, parse, render
from stage1.abi import HealthSpec, PodSpec

REPO = Path(__file__).resolve().parents[2]


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("health_script", REPO / "stage1/scripts/health.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("2.5", 2.5), ("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0)],
)
def test_durations_read_as_podman_reads_them(text: str, seconds: float) -> None:
    assert duration(text, "--health-interval") == pytest.approx(seconds)


def test_layers_merge_key_by_key_the_flags_last() -> None:
    image = {"cmd": '["/bin/check", "--quick"]', "interval": "10s", "retries": "5"}
    flags = {"interval": "1s", "on-failure": "restart"}
    assert health_spec((("image ", image), ("--health-", flags))) == HealthSpec(
        command=("/bin/check", "--quick"), interval=1.0, timeout=30.0, retries=5, on_failure="restart"
    )


def test_shell_form_and_none() -> None:
    assert health_spec((("--health-", {"cmd": "test -e /ok"}),)) == HealthSpec(
        command=("/bin/sh", "-c", "test -e /ok")
    )
    assert health_spec((("image ", {"cmd": "true"}), ("--health-", {"cmd": "none"}))) is None
    assert health_spec(()) is None


@pytest.mark.parametrize(
    ("keys", "said"),
    [
        ({"cmd": "true", "interval": "soon"}, "bad --health-interval 'soon'"),
        ({"cmd": "true", "interval": "0s"}, "bad --health-interval '0s'"),
        ({"cmd": "true", "on-failure": "explode"}, "bad --health-on-failure 'explode'"),
        ({"cmd": "true", "retries": "-1"}, "bad --health-retries '-1'"),
        ({"cmd": "[1, 2]"}, "bad --health-cmd '[1, 2]'"),
        ({"interval": "1s"}, "--health-interval given, but no health check command"),
    ],
)
def test_bad_values_are_usage_errors(keys: dict[str, str], said: str) -> None:
    with pytest.raises(UsageError) as caught:
        health_spec((("--health-", keys),))
    assert caught.value.message.startswith(said) and caught.value.kind is ErrorKind.USAGE


def test_app_flags_are_checked_as_they_are_read() -> None:
    (app,) = parse_apps(["img", "--health-cmd=test -e /ok", "--health-interval", "2s"])
    assert app.health == (("cmd", "test -e /ok"), ("interval", "2s"))
    with pytest.raises(UsageError, match="bad --health-on-failure"):
        parse_apps(["img", "--health-on-failure=sometimes"])


def test_an_oci_healthcheck_becomes_annotations() -> None:
    check = {"Test": ["CMD", "/bin/check", "-q"], "Interval": 2_000_000_000, "StartPeriod": 0, "Retries": 4}
    assert oci_annotations(check) == [
        ("nspod.io/health-cmd", '["/bin/check", "-q"]'),
        ("nspod.io/health-interval", "2s"),
        ("nspod.io/health-retries", "4"),
    ]
    assert oci_annotations({"Test": ["CMD-SHELL", "curl -f localhost"]}) == [
        ("nspod.io/health-cmd", "curl -f localhost")
    ]
    assert oci_annotations({"Test": ["NONE"]}) == [("nspod.io/health-cmd", "none")]
    assert oci_annotations({"Test": "bogus"}) == []


POD_FILE = """
[[app]]
image = "example.com/web"
health-cmd = ["/bin/check"]
health-interval = "5s"
health-retries = 2
health-on-failure = "kill"
"""


def test_pod_file_keys_read_and_render_back() -> None:
    pod = parse(POD_FILE, "web.toml", "web")
    health = dict(pod.request.apps[0].health)
    assert health == {"cmd": '["/bin/check"]', "interval": "5s", "retries": "2", "on-failure": "kill"}
    assert parse(render(pod.request), "web.toml", "web").request.apps[0].health == pod.request.apps[0].health


@pytest.mark.parametrize(
    ("line", "said"),
    [('health-on-failure = "maybe"', "health-on-failure"), ('health-interval = "x"', "health-interval")],
)
def test_pod_file_bad_keys_name_the_key(line: str, said: str) -> None:
    with pytest.raises(PodFileError, match=said):
        parse('[[app]]\nimage = "x"\nhealth-cmd = "true"\n' + line + "\n", "web.toml", "web")


def test_the_spec_round_trips_through_pod_json() -> None:
    from stage1.abi import AppSpec

    app = AppSpec(name="web", rootfs="/r", exec=("/bin/web",), health=HealthSpec(command=("/bin/ok",)))
    spec = PodSpec(uuid="u", machine="m", hostname="m", apps=(app,))
    assert PodSpec.from_json(spec.to_json()) == spec


def test_the_state_rules() -> None:
    judged: Any = script().judged
    state = {"status": "starting", "failing_streak": 0}
    assert judged(state, False, in_start=True, retries=2)["status"] == "starting"  # not counted
    once = judged(state, False, in_start=False, retries=2)
    assert (once["status"], once["failing_streak"]) == ("starting", 1)
    assert judged(once, False, in_start=False, retries=2)["status"] == "unhealthy"
    assert judged(once, True, in_start=False, retries=2) | {"failing_streak": 0} == {
        "status": "healthy",
        "failing_streak": 0,
    }
    healthy = {"status": "healthy", "failing_streak": 0}
    assert judged(healthy, False, in_start=True, retries=1)["status"] == "unhealthy"  # counted once healthy


def test_recorded_state_is_read_and_garbage_ignored(tmp_path: Path) -> None:
    (tmp_path / "web.health").write_text(json.dumps({"status": "unhealthy", "failing_streak": 3}))
    (tmp_path / "db.health").write_text("{not json")
    assert read_health(str(tmp_path), "web") is not None
    assert read_health(str(tmp_path), "db") is None
    assert read_health(str(tmp_path), "none") is None


def test_an_oci_config_healthcheck_reaches_the_appc_manifest_and_the_plan() -> None:
    from stage0.images.oci.convert import image_manifest
    from stage0.images.oci.manifest import parse_config
    from stage0.pods.health import declared_health
    from stage0.pods.requests import AppRequest
    from stage0.schema.boundary import parse_image_manifest

    check = {"Test": ["CMD-SHELL", "test -e /ok"], "Interval": 5_000_000_000, "Retries": 2}
    digest = "sha256:" + "0" * 64
    config = parse_config(json.dumps({
        "os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": [digest]},
        "config": {"Cmd": ["/bin/sleep", "600"], "Healthcheck": check},
    }).encode())  # fmt: skip
    data = image_manifest(
        config, name="example.com/web", version="1", digest=digest, primary_group=lambda u: None
    )
    manifest = parse_image_manifest(json.dumps(data).encode(), "converted")
    assert declared_health(AppRequest(image="web"), manifest) == HealthSpec(
        command=("/bin/sh", "-c", "test -e /ok"), interval=5.0, retries=2
    )
    over = AppRequest(image="web", health=(("on-failure", "restart"), ("interval", "1s")))
    assert declared_health(over, manifest) == HealthSpec(
        command=("/bin/sh", "-c", "test -e /ok"), interval=1.0, retries=2, on_failure="restart"
    )
