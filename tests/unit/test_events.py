"""Events (stage0/events.py, stage1/events.py, stage1/lifecycle.py, stage0/cli/events.py): the
entries both stages write, the times and filters ``nspod events`` and ``nspod logs`` read."""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path

import pytest

from stage0 import events as stage0_events
from stage0.cli.events import matches, parse_filters, point_in_time, record, text_line
from stage0.errors import UsageError
from stage1 import events as stage1_events
from stage1.abi import AppSpec, PodPaths, PodSpec
from stage1.journal import stamp
from stage1.lifecycle import end_script, ready_script, stop_post

NOW = 1_765_141_200.0  # 2025-12-07T21:00:00Z


@pytest.mark.parametrize(
    ("event", "fields"),
    [
        ("start", {"pod": "0f1e", "pod_name": "web", "unit": "nspod-web.service"}),
        ("exited", {"pod": "0f1e", "app": "web", "exit_code": 143, "signal": "SIGTERM", "reason": None}),
        ("pull", {"image": "sha512-ab", "image_name": "example.com/web"}),
        ("health_status", {"pod": "0f1e", "app": "web", "health": "unhealthy"}),
    ],
)
def test_both_stages_write_the_same_entry(event: str, fields: dict[str, object]) -> None:
    assert stage0_events.entry(event, fields) == stage1_events.entry(event, fields)


def test_entry_fields() -> None:
    entry = stage0_events.entry("exited", {"pod": "0f1e", "app": "web", "exit_code": 3, "signal": None})
    assert entry["NSPOD_EVENT"] == b"exited" and entry["NSPOD_TYPE"] == b"pod"
    assert entry["NSPOD_EXIT_CODE"] == b"3" and "NSPOD_SIGNAL" not in entry
    assert entry["SYSLOG_IDENTIFIER"] == b"nspod-event" and "POD_UUID" not in entry
    assert stage0_events.entry("pull", {})["NSPOD_TYPE"] == b"image"


def test_message_ids_are_nspods_own_and_stable() -> None:
    # journalctl MESSAGE_ID=… finds them in every version: never change one
    assert stage0_events.message_id("start") == "b58b7a3071595158a0b97f20761d5a4e"
    assert stage1_events.message_id("exited") == "ca70dfc0a0135c2cb6c0efe5260fbec8"
    ids = {stage0_events.message_id(e) for e in ("create", "start", "ready", "exited", "stop", "remove")}
    assert len(ids) == 6


@pytest.mark.parametrize(("event", "key"), [("Bad Name", "pod"), ("start", "Bad-Key")])
def test_bad_names_are_refused(event: str, key: str) -> None:
    with pytest.raises(ValueError):
        stage0_events.entry(event, {key: "x"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", NOW - 600),
        ("2h", NOW - 7200),
        ("1h30m", NOW - 5400),
        ("500ms", NOW - 0.5),
        ("1765141100", 1_765_141_100.0),
        ("1765141100.25", 1_765_141_100.25),
        ("2025-12-07T20:00:00Z", NOW - 3600),
        ("2025-12-07T21:00:00+01:00", NOW - 3600),
        ("2025-12-07T20:00:00.5Z", NOW - 3599.5),
        ("2025-12-07", datetime.datetime(2025, 12, 7, tzinfo=datetime.UTC).timestamp()),
    ],
)
def test_points_in_time(text: str, expected: float) -> None:
    assert point_in_time(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["yesterday", "10x", "-5m", "2025-13-01", ""])
def test_bad_times_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="bad time"):
        point_in_time(text, NOW)


def test_filters() -> None:
    filters = parse_filters(["type=pod,event=start", "event=stop", "pod=web"])
    assert filters == {"type": ("pod",), "event": ("start", "stop"), "pod": ("web",)}
    fields = {"pod": "0f1e2d3c", "pod_name": "web"}
    assert matches("start", "pod", fields, filters)
    assert matches("stop", "pod", fields, filters)
    assert not matches("ready", "pod", fields, filters)
    assert matches("start", "pod", {"pod": "0f1e2d3c"}, {"pod": ("0f1e",)})
    assert not matches("pull", "image", {"image": "sha512-ab"}, {"type": ("pod",)})
    assert matches("pull", "image", {"image": "sha512-ab"}, {"image": ("sha512-a",)})
    assert matches("start", "pod", {}, {})


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("color=red", "unknown filter 'color'"),
        ("event", "has no value"),
        ("type=volume", "unknown event type"),
    ],
)
def test_bad_filters_are_usage_errors(given: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_filters([given])


def test_event_read_back() -> None:
    found = stage0_events.Event.of(
        {
            "__REALTIME_TIMESTAMP": "1765141200123456",
            "NSPOD_EVENT": "exited",
            "NSPOD_TYPE": "pod",
            "NSPOD_APP": "web",
            "NSPOD_EXIT_CODE": "0",
            "MESSAGE": "nspod pod web: exited",
        }
    )
    assert found is not None and found.time == pytest.approx(1_765_141_200.123456)
    assert found.fields == (("app", "web"), ("exit_code", "0")) and found.get("app") == "web"
    assert stage0_events.Event.of({"MESSAGE": "not an event"}) is None
    as_json = record(found.time, found.event, found.type, dict(found.fields))
    assert as_json["time"] == "2025-12-07T21:00:00.123456Z" and as_json["exit_code"] == "0"
    line = text_line(
        found.time, found.event, found.type, {"pod_name": "web", "app": "web", "exit_code": "0"}
    )
    assert line == "2025-12-07 21:00:00.123456 UTC pod exited web (exit_code=0)"


def test_a_health_checks_entry_reads_as_an_event() -> None:
    found = stage0_events.Event.of(
        {
            "__REALTIME_TIMESTAMP": "1765141200000000",
            "SYSLOG_IDENTIFIER": "nspod-health",
            "NSPOD_EVENT": "health_status",
            "NSPOD_POD": "web",
            "NSPOD_POD_UUID": "0f1e",
            "NSPOD_APP": "srv",
            "NSPOD_HEALTH": "unhealthy",
        }
    )
    assert found is not None and (found.event, found.type) == ("health_status", "pod")
    assert (found.get("pod"), found.get("pod_name"), found.get("health")) == ("0f1e", "web", "unhealthy")


def test_journalctl_reads_roots_events_alone() -> None:
    argv = stage0_events.journalctl_argv(NOW, follow=False)
    assert argv[-6:-3] == ["SYSLOG_IDENTIFIER=nspod-event", "_UID=0", "+"]
    assert "_SYSTEMD_SLICE=machine.slice" in argv[-3:]
    assert f"--since=@{NOW:.6f}" in argv and "--follow" not in argv
    assert "--lines=0" in stage0_events.journalctl_argv(None, follow=True)


def test_log_stamp() -> None:
    assert stamp(1_765_141_200_000_042) == b"2025-12-07T21:00:00.000042Z "


def test_the_end_script_logs_each_apps_exit_in_order_then_the_stop(tmp_path: Path) -> None:
    paths = PodPaths(str(tmp_path / "pod"))
    os.makedirs(paths.status)
    spec = PodSpec(uuid="0f1e", machine="web", hostname="web", apps=(_app("web"), _app("db"), _app("never")))
    (tmp_path / "pod/status/db").write_text("0\n")
    os.utime(tmp_path / "pod/status/db", (1000.0, 1000.0))  # ended first
    (tmp_path / "pod/status/web.signal").write_text("15\n")
    (tmp_path / "pod/status/web").write_text("143\n")
    logger = tmp_path / "logger"
    logger.write_text(f"#!/bin/sh\ncat >> {tmp_path}/entries; echo >> {tmp_path}/entries\n")
    logger.chmod(0o755)
    script = tmp_path / "end"
    script.write_text(end_script(spec, paths, logger=str(logger)))
    env = {"PATH": "/usr/bin:/bin", "SERVICE_RESULT": "success", "EXIT_STATUS": "0"}
    subprocess.run(["/bin/sh", str(script)], check=True, env=env, timeout=30)
    entries = [
        dict(line.split("=", 1) for line in block.splitlines())
        for block in (tmp_path / "entries").read_text().split("\n\n")
        if block.strip()
    ]
    assert [(e["NSPOD_EVENT"], e.get("NSPOD_APP")) for e in entries] == [
        ("exited", "db"),
        ("exited", "web"),
        ("stop", None),
    ]
    assert entries[0]["NSPOD_EXITED"] == "1000.000000" and "NSPOD_SIGNAL" not in entries[0]
    assert (entries[1]["NSPOD_EXIT_CODE"], entries[1]["NSPOD_SIGNAL"]) == ("143", "SIGTERM")
    assert (
        entries[1]["MESSAGE_ID"] == stage1_events.message_id("exited") and entries[1]["NSPOD_POD"] == "0f1e"
    )
    assert (
        entries[2]["NSPOD_RESULT"] == "success" and entries[2]["MESSAGE"] == "nspod pod web: stop (success)"
    )
    assert not script.exists()  # logged once


def test_the_ready_script_sends_one_entry(tmp_path: Path) -> None:
    logger = tmp_path / "logger"
    logger.write_text(f"#!/bin/sh\ncat > {tmp_path}/entry\n")
    logger.chmod(0o755)
    script = ready_script(PodSpec(uuid="0f1e", machine="web", hostname="web", apps=()), logger=str(logger))
    subprocess.run(["/bin/sh", "-c", script], check=True, timeout=30)
    sent = dict(line.split("=", 1) for line in (tmp_path / "entry").read_text().splitlines())
    assert sent == {
        k: v.decode() for k, v in stage1_events.entry("ready", {"pod": "0f1e", "pod_name": "web"}).items()
    }


def _app(name: str) -> AppSpec:
    return AppSpec(name=name, rootfs="/r", exec=("/bin/true",))


def test_the_end_is_logged_through_a_script() -> None:
    command = stop_post("nspod-web.service")
    assert command.ignore_failure and command.argv[:2] == ("/bin/sh", "-c")
    assert "/run/nspod/events/nspod-web.service" in command.argv[2]


@pytest.mark.parametrize(("code", "signal"), [("143\n", "15\n"), ("7", None), (None, None)])
def test_a_one_app_pods_end_reads_its_status_without_ls(
    tmp_path: Path, code: str | None, signal: str | None
) -> None:
    # one app: no ordering (no ls); the status read with the shell's read, a last line unended too
    paths = PodPaths(str(tmp_path / "pod"))
    os.makedirs(paths.status)
    for name, text in (("web", code), ("web.signal", signal)):
        if text is not None:
            (tmp_path / "pod/status" / name).write_text(text)
    logger = tmp_path / "logger"
    logger.write_text(f"#!/bin/sh\ncat >> {tmp_path}/entries; echo >> {tmp_path}/entries\n")
    logger.chmod(0o755)
    text = end_script(PodSpec(uuid="0f1e", machine="web", hostname="web", apps=(_app("web"),)), paths,
                      logger=str(logger))  # fmt: skip
    assert "ls -1tr" not in text
    (tmp_path / "end").write_text(text)
    subprocess.run(["/bin/sh", str(tmp_path / "end")], check=True, env={"PATH": "/usr/bin:/bin"}, timeout=30)
    entries = [
        dict(line.split("=", 1) for line in block.splitlines())
        for block in (tmp_path / "entries").read_text().split("\n\n")
        if block.strip()
    ]
    exited = [
        (e.get("NSPOD_EXIT_CODE"), e.get("NSPOD_SIGNAL")) for e in entries if e["NSPOD_EVENT"] == "exited"
    ]
    expected = {"143\n": [("143", "SIGTERM")], "7": [("7", None)], None: []}[code]
    assert exited == expected and entries[-1]["NSPOD_EVENT"] == "stop"
