"""--format=json: one schema for list, status and image list (stage0/schema/schemas/output.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stage0.images.aci.build import build_aci
from tests.conftest import assert_output_schema, run_nspod


def test_prepared_pods_in_list_and_status(tmp_path: Path, layout: Path) -> None:
    aci = tmp_path / "hello.aci"
    build_aci(str(layout), str(aci))
    base = ("--dir", str(tmp_path / "data"), "--insecure-options=image")
    prepared = run_nspod(*base, "prepare", "--name=hello", str(aci))
    assert prepared.returncode == 0, prepared.stderr
    uuid = prepared.stdout.split()[-1]
    listed = json.loads(run_nspod(*base, "list", "--format=json").stdout)
    assert_output_schema("pod-list", listed)
    assert listed[0]["uuid"] == uuid and listed[0]["name"] == "hello" and listed[0]["state"] == "prepared"
    app = listed[0]["apps"][0]
    assert app["image"]["name"] == "example.com/hello" and app["image"]["version"] == "1.0.0"
    assert app["exit_code"] is None and app["image"]["id"].startswith("sha512-")
    status = json.loads(run_nspod(*base, "status", "--format=json", "hello").stdout)  # by name
    assert_output_schema("pod-status", status)
    assert status["pid"] is None and status["exited"] is False
    assert run_nspod(*base, "list", "--format=table").returncode == 0  # the old spelling still works
    text = run_nspod(*base, "status", uuid[:8]).stdout.splitlines()
    assert "state=prepared" in text and "exited=false" in text  # unchanged for rkt users


@pytest.mark.parametrize(
    "bad",
    [
        {"uuid": "x"},
        [{"uuid": "00000000-0000-0000-0000-000000000000", "name": None, "unit": None, "state": "prepared",
          "apps": [], "created": "2026-12-03 10:00:00", "started": None}],
        [{"uuid": "00000000-0000-0000-0000-000000000000", "name": None, "unit": None, "state": "prepared",
          "apps": [], "created": "2026-12-03T10:00:00Z", "started": None, "extra": 1}],
    ],
)  # fmt: skip
def test_the_schema_refuses_what_it_should(bad: object) -> None:
    with pytest.raises(AssertionError):
        assert_output_schema("pod-list", bad)


@pytest.mark.parametrize(
    ("recorded", "code", "signal"),
    [
        ({"": "143", ".signal": "15"}, 143, "SIGTERM"),
        ({"": "15"}, 15, None),
        ({"": "137", ".signal": "9"}, 137, "SIGKILL"),
    ],
)
def test_an_app_a_signal_ended_is_told_from_one_that_exited(
    tmp_path: Path, layout: Path, recorded: dict[str, str], code: int, signal: str | None
) -> None:
    # issue #23 item 13: SIGTERM and 'exit 15' both read "hello=15"; now 143 and the signal's name
    aci = tmp_path / "hello.aci"
    build_aci(str(layout), str(aci))
    base = ("--dir", str(tmp_path / "data"), "--insecure-options=image")
    prepared = run_nspod(*base, "prepare", "--name=hello", str(aci))
    assert prepared.returncode == 0, prepared.stderr
    uuid = prepared.stdout.split()[-1]
    status = tmp_path / "data/pods/prepared" / uuid / "status"
    status.mkdir(exist_ok=True)
    for suffix, text in recorded.items():  # as the app's reaper (stage1/scripts/reaper.sh) records it
        (status / f"hello{suffix}").write_text(text + "\n")
    listed = json.loads(run_nspod(*base, "list", "--format=json").stdout)
    assert_output_schema("pod-list", listed)
    (app,) = listed[0]["apps"]
    assert (app["exit_code"], app["signal"]) == (code, signal)
    cell = f"hello={code}" + (f"({signal})" if signal else "")
    assert cell in run_nspod(*base, "list", "--no-legend").stdout.split()
    lines = run_nspod(*base, "status", uuid).stdout.splitlines()
    assert [t for t in lines if t.startswith("app-")] == [f"app-hello={code}"]
    assert ([f"signal-hello={signal}"] if signal else []) == [t for t in lines if t.startswith("signal-")]
