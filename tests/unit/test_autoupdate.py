"""Auto-update's pure part (stage0/pods/autoupdate.py): records, pins, readiness, health."""

from __future__ import annotations

from pathlib import Path

import pytest

from stage0.pods.autoupdate import (
    Readiness,
    Record,
    load_record,
    parse_record,
    pinned,
    pruned,
    readiness,
    rolled_back,
    save_record,
    superseded,
    switched,
    why_not_ready,
    worst_health,
)
from stage0.pods.podfile import PodFileError, parse
from stage0.pods.requests import AppRequest, PodRequest

REF = "docker://registry.example/app:1"


def test_a_switch_keeps_current_and_previous_and_drops_the_one_before() -> None:
    first = switched(Record(), REF, "sha512-a", "sha512-b")
    assert first.pins == {REF: "sha512-b"} and first.keep == ("sha512-a", "sha512-b")
    second = switched(first, REF, "sha512-b", "sha512-c")
    assert second.keep == ("sha512-b", "sha512-c") and second.previous == {REF: "sha512-b"}
    assert superseded(first, second) == ["sha512-a"]


def test_a_rollback_pins_the_old_image_and_forgets_the_bad_one() -> None:
    before = switched(Record(), REF, "sha512-a", "sha512-b")
    trying = switched(before, REF, "sha512-b", "sha512-c")
    back = rolled_back(before, REF, "sha512-b")
    assert back.pins == {REF: "sha512-b"} and superseded(trying, back) == ["sha512-c"]
    never = rolled_back(Record(), REF, "sha512-a")  # the first update of a pod, rolled back
    assert never.pins == {REF: "sha512-a"} and never.keep == ("sha512-a",)


def test_records_round_trip_and_garbage_reads_as_none(tmp_path: Path) -> None:
    record = switched(Record(), REF, "sha512-a", "sha512-b")
    save_record(str(tmp_path), "web", record)
    assert load_record(str(tmp_path), "web") == record
    assert load_record(str(tmp_path), "other") == Record()
    assert parse_record("[1, 2]") == Record() and parse_record("{") == Record()


def test_pinned_replaces_only_the_pinned_references() -> None:
    request = PodRequest(apps=(AppRequest(image=REF), AppRequest(image="other:1")))
    out = pinned(request, Record({REF: "sha512-b"}))
    assert [a.image for a in out.apps] == ["sha512-b", "other:1"]


def test_readiness_needs_a_new_run_every_app_active_and_health() -> None:
    assert readiness("active", ("active",), False, None) is Readiness.WAITING
    assert readiness("active", ("active",), True, None) is Readiness.READY
    assert readiness("active", ("active", "activating"), True, None) is Readiness.WAITING
    assert readiness("active", (), True, None) is Readiness.WAITING
    assert readiness("activating", (), True, None) is Readiness.WAITING
    assert readiness("failed", (), True, None) is Readiness.FAILED
    assert readiness("active", ("active", "failed"), True, None) is Readiness.FAILED
    assert readiness("active", ("active",), True, "starting") is Readiness.WAITING
    assert readiness("active", ("active",), True, "unhealthy") is Readiness.FAILED
    assert readiness("active", ("active",), True, "healthy") is Readiness.READY


def test_health_is_the_worst_checked_apps_and_starting_is_not_blocked_on() -> None:
    assert worst_health([]) is None and worst_health(["healthy", "starting"]) == "starting"
    assert worst_health(["healthy", "unhealthy", "starting"]) == "unhealthy"
    assert readiness("active", ("active",), True, "starting", final=True) is Readiness.READY
    assert readiness("active", ("activating",), True, "starting", final=True) is Readiness.WAITING
    assert readiness("active", ("activating",), True, "unhealthy") is Readiness.FAILED
    assert (
        why_not_ready("active", "running", ("active",), "", 5, "unhealthy")
        == "its health check found it unhealthy"
    )


def test_why_not_ready_is_one_line() -> None:
    assert "before it was ready" in why_not_ready("failed", "failed", (), "exit-code", 5)
    text = why_not_ready("active", "running", ("active", "activating"), "", 5)
    assert text == "not ready within 5s (pod active/running, 1/2 apps ready)"


def test_pod_file_keys() -> None:
    app = '[[app]]\nimage = "x"\n'
    for bad in (
        app + 'auto-update = "registry"\n',
        'auto-update = "always"\n' + app,
        "auto-update-timeout = 0\n" + app,
    ):
        with pytest.raises(PodFileError):
            parse(bad, "/p/web.toml", "web")
    head = 'auto-update = "registry"\nauto-update-timeout = 5\n[[app]]\nimage = "x"\n'
    pod = parse(head, "/p/web.toml", "web")
    assert pod.auto_update == "registry" and pod.auto_update_timeout == 5.0


def test_pruned_lets_go_of_references_no_longer_followed() -> None:
    record = switched(switched(Record(), REF, "sha512-a", "sha512-b"), "old:1", "sha512-x", "sha512-y")
    kept = pruned(record, (REF,))
    assert kept.pins == {REF: "sha512-b"} and kept.keep == ("sha512-a", "sha512-b")
    assert pruned(kept, (REF,)) == kept
