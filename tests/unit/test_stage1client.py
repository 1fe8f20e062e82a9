"""One typed stage1 client per pod (stage0/host/stage1client.py, issue #25): made from the stage1
the pod recorded, its command lines planned purely, and the nspawn flavor's in-process paths
refused for another flavor's pod."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from stage0.errors import Error
from stage0.host.stage1client import Entering, Stage1Client
from stage0.options import GlobalOptions
from stage0.pods.flavor import record


def pod(tmp_path: Path, stage1: str) -> str:
    (tmp_path / "pod.json").write_text("{}")
    record(str(tmp_path), stage1)
    return str(tmp_path)


@pytest.mark.parametrize("stage1", ["", "fly", f"{sys.executable} /opt/other-stage1"])
def test_the_client_is_the_recorded_stage1_whatever_the_invocation_says(tmp_path: Path, stage1: str) -> None:
    directory = pod(tmp_path, stage1)
    options = dataclasses.replace(GlobalOptions(), stage1="fly" if stage1 != "fly" else "", debug=True)
    client = Stage1Client.of(options, directory)
    assert (client.stage1, client.debug) == (stage1, True)
    assert Stage1Client.recorded(directory).stage1 == stage1
    assert client.flavor == (stage1 or "nspawn")


def test_on_no_pod_the_invocations_stage1_fly_sweeping_as_nspawn(tmp_path: Path) -> None:
    fly = dataclasses.replace(GlobalOptions(), stage1="fly")
    assert Stage1Client.of(fly, str(tmp_path)).stage1 == ""
    other = dataclasses.replace(GlobalOptions(), stage1="/opt/s1")
    assert Stage1Client.of(other, str(tmp_path)).stage1 == "/opt/s1"


def test_command_lines() -> None:
    nspawn = Stage1Client("/pods/run/u1")
    assert nspawn.argv("stop") == ["stop", "/pods/run/u1"]
    assert nspawn.command("gc") == [sys.executable, "-m", "stage1", "gc", "/pods/run/u1"]
    fly = Stage1Client("/pods/run/u1", "fly", debug=True)
    assert fly.command("gc") == [sys.executable, "-m", "stage1.fly.pod", "--debug", "gc", "/pods/run/u1"]
    other = Stage1Client("/p", "/opt/s1 --flag 'a b'")
    assert other.command("run", "--detach") == ["/opt/s1", "--flag", "a b", "run", "/p", "--detach"]
    with pytest.raises(ValueError, match="no stage1 entry point"):
        nspawn.argv("boot")


def test_enter_args() -> None:
    assert Stage1Client.enter_args("web", ["ls", "-l"]) == ["--app=web", "--", "ls", "-l"]
    assert Stage1Client.enter_args(None, ["--app"]) == ["--", "--app"]
    how = Stage1Client.enter_args("web", ["id"], Entering(("A=1",), "1:2", "/tmp", tty=False))
    assert how == ["--app=web", "--env=A=1", "--tty=no", "--user=1:2", "--workdir=/tmp", "--", "id"]


def test_each_verb_reaches_the_recorded_stage1_with_its_argv(tmp_path: Path) -> None:
    script = tmp_path / "stage1.py"
    script.write_text("import sys\nopen(sys.argv[1], 'a').write(repr(sys.argv[2:]) + '\\n')\nsys.exit(3)\n")
    log = tmp_path / "argv"
    client = Stage1Client("/pods/run/u1", f"{sys.executable} {script} {log}")
    assert client.stop(force=True) == 3
    assert client.logs(follow=True, app="web", window=["--tail=5"]) == 3
    assert client.update("web", "--memory=1") == 3
    assert client.app("stop", "web", "--timeout", "2") == 3
    assert client.enter("web", ["id"], Entering(tty=True)) == 3
    assert log.read_text().splitlines() == [
        repr(["stop", "/pods/run/u1", "--force"]),
        repr(["logs", "/pods/run/u1", "--follow", "--tail=5", "--app=web"]),
        repr(["update", "/pods/run/u1", "--app=web", "--memory=1"]),
        repr(["app", "/pods/run/u1", "stop", "--app", "web", "--timeout", "2"]),
        repr(["enter", "/pods/run/u1", "--app=web", "--tty=yes", "--", "id"]),
    ]


@pytest.mark.parametrize("stage1", ["fly", "/opt/s1"])
def test_the_nspawn_flavors_own_paths_refuse_another_flavors_pod(tmp_path: Path, stage1: str) -> None:
    client = Stage1Client.recorded(pod(tmp_path, stage1))
    calls: list[Callable[[], object]] = [
        lambda: client.app_states(None),
        lambda: client.join_app("web", attached=False),
        lambda: client.start_app("web", None),
        lambda: client.start_in_place("web", 2),
        lambda: client.warm("nspod-x"),
        lambda: client.enter_command("web", ["id"], tty=False, term="dumb", unit="u"),
    ]
    for call in calls:
        with pytest.raises(Error, match=f"runs on stage1 {stage1}"):
            call()


def test_list_shows_the_flavor_once_a_pod_is_not_nspawns() -> None:
    from stage0.api.views import PodView
    from stage0.cli import podlist
    from stage0.pods.dirs import PodState

    view = PodView(
        "0f4e4a3c-1111-4222-8333-944455556666", "/p", PodState.RUNNING, "web", "u", 1.0, 2.0, (), ()
    )
    nspawn, fly = podlist.Row(view, ()), podlist.Row(view, (), {}, "fly")
    assert not podlist.flavored([nspawn]) and podlist.flavored([nspawn, fly])
    assert len(podlist.compact_cells(nspawn, 3.0)) == len(podlist.LEGEND)
    cells = podlist.compact_cells(fly, 3.0, stage1=True)
    assert cells[podlist.FLAVORED_LEGEND.index("STAGE1")] == "fly"
    assert podlist.FIELDS["Stage1"](fly, 3.0) == "fly"
