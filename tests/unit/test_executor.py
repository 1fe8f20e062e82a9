"""stage0/host/executor.py runs stage1 — built in, or another one given as a command — with the argv
`python -m stage1` takes; stage0/host/runner.py runs every other program."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from stage0.errors import Error
from stage0.host.executor import call_stage1
from stage0.host.runner import CommandFailed, run
from stage0.options import GlobalOptions


def test_an_external_stage1_gets_the_same_argv_and_passes_its_status(tmp_path: Path) -> None:
    script = tmp_path / "stage1.py"
    script.write_text("import sys\nopen(sys.argv[1], 'w').write(repr(sys.argv[2:]))\nsys.exit(7)\n")
    record = tmp_path / "argv"
    options = dataclasses.replace(GlobalOptions(), debug=True, stage1=f"{sys.executable} {script} {record}")
    assert call_stage1(options, "stop", "/pods/run/u1", "--force") == 7
    assert record.read_text() == repr(["--debug", "stop", "/pods/run/u1", "--force"])


def test_a_missing_external_stage1_is_a_clear_error() -> None:
    options = dataclasses.replace(GlobalOptions(), stage1="/nonexistent/stage1")
    with pytest.raises(Error, match="cannot run stage1 '/nonexistent/stage1'") as caught:
        call_stage1(options, "gc", "/pods/run/u1")
    assert "--stage1" in caught.value.hint


def test_the_built_in_stage1_runs_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert call_stage1(GlobalOptions(), "logs", str(tmp_path)) == 254  # no pod spec there
    assert "cannot read the pod spec" in capsys.readouterr().err


def test_the_runner_quotes_the_last_stderr_line() -> None:
    with pytest.raises(CommandFailed, match="copying failed: second"):
        run(["sh", "-c", "echo first >&2; echo second >&2; exit 3"], what="copying")
    assert run(["sh", "-c", "echo out"]).stdout == "out\n"
    with pytest.raises(Error, match="no-such-program is not installed"):
        run(["no-such-program"])


def test_a_threaded_server_runs_only_the_app_verbs_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """'nspod cri' serves from many threads: stage1's verbs that fork (run's heir) or expect a
    process of their own run as a program there; the app verbs stay in its process."""
    import subprocess

    from stage0.host import executor, runner

    ran: list[list[str]] = []

    def fake_run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(executor.THREADED, "is_set", lambda: True)
    monkeypatch.setattr(runner, "run", fake_run)
    assert call_stage1(GlobalOptions(), "gc", "/pods/run/u1") == 0
    assert ran == [[sys.executable, "-m", "stage1", "gc", "/pods/run/u1"]]
    assert call_stage1(GlobalOptions(), "app", str(tmp_path), "start", "--app", "web") == 254  # in process
    assert len(ran) == 1 and "nspod:" in capsys.readouterr().err
