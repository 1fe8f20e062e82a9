"""The domain API's read model of an app sandbox's apps (stage0/api/views.py): stage1's state lines
become typed views, and an ended pod's apps are read from what their reapers recorded — what the
CRI's ContainerStatus shows for a container whose sandbox has stopped."""

from __future__ import annotations

import os
from pathlib import Path

from stage0.api.views import AppState, AppView, recorded_app
from stage0.pods.dirs import DirState, Pod


def test_stage1_state_lines_become_typed_views() -> None:
    line = {"name": "web", "state": "exited", "exit_code": 3, "signal": None, "started": "1700000000.5"}
    view = AppView.of({**line, "exited": 1700000001.0, "pid": None})
    assert view.state is AppState.EXITED and view.exit_code == 3
    assert view.started == 1700000000.5  # stage1 gives the recorded text: a number here
    assert AppView.of({"name": "web", "state": "created", "started": "garbled"}).started is None


def _pod(tmp_path: Path) -> Pod:
    (tmp_path / "pod" / "status").mkdir(parents=True)
    return Pod(uuid="0" * 8, where=DirState.EXITED_GARBAGE, path=str(tmp_path / "pod"))


def test_an_app_that_never_started_is_still_created(tmp_path: Path) -> None:
    view = recorded_app(_pod(tmp_path), "web")
    assert (view.state, view.exit_code, view.started) == (AppState.CREATED, None, None)


def test_an_ended_app_has_its_code_signal_and_times(tmp_path: Path) -> None:
    pod = _pod(tmp_path)
    status = tmp_path / "pod" / "status"
    (status / "web.started").write_text("1700000000.25\n")
    (status / "web.signal").write_text("15\n")
    (status / "web").write_text("143\n")
    os.utime(status / "web", (1700000009, 1700000009))
    view = recorded_app(pod, "web")
    assert view.state is AppState.EXITED
    assert (view.exit_code, view.signal) == (143, "SIGTERM")
    assert (view.started, view.exited) == (1700000000.25, 1700000009)


def test_an_app_killed_with_its_pod_exited_unrecorded(tmp_path: Path) -> None:
    pod = _pod(tmp_path)
    (tmp_path / "pod" / "status" / "web.started").write_text("1700000000\n")
    view = recorded_app(pod, "web")
    assert (view.state, view.exit_code, view.exited) == (AppState.EXITED, 255, None)
