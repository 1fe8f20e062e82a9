"""``nspod enter``'s systemd-run command line: the app's own profile, golden (issue #11, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stage1.abi import AppSpec, Error, PodPaths, PodSpec
from stage1.enter import check_command, enter_argv
from tests.conftest import assert_golden

APP = AppSpec(
    name="web",
    rootfs="/var/lib/nspod/trees/x/rootfs",
    exec=("/bin/server",),
    env=(("GREETING", "hello world"), ("RATE", "100%")),
    user=1000,
    group=1000,
    capabilities=("CAP_NET_BIND_SERVICE",),
)
SPEC = PodSpec(uuid="0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0", machine="web", hostname="web", apps=(APP,))


@pytest.mark.parametrize("tty", [False, True])
def test_enter_argv_golden(tty: bool) -> None:
    argv = enter_argv(
        SPEC, "web", ["/bin/sh", "-c", "id"], tty=tty, hidden=("/proc/kcore",), leader=42, term="xterm"
    )
    assert_golden(f"enter-argv-{'tty' if tty else 'pipe'}.txt", "\n".join(argv) + "\n")


def test_an_unknown_app_is_refused() -> None:
    with pytest.raises(Error, match="has no app 'db'"):
        enter_argv(SPEC, "db", [], tty=False, hidden=())


def test_a_command_the_app_lacks_is_refused_with_a_message(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin/sh").symlink_to("busybox")  # a link into the app's root, not followed
    app = AppSpec(name="web", rootfs=str(rootfs), exec=("/bin/sh",))
    paths = PodPaths(str(tmp_path / "pod"))
    check_command(paths, app, "sh")
    check_command(paths, app, "/bin/sh")
    with pytest.raises(Error, match="app web has no command 'nonexist'"):
        check_command(paths, app, "nonexist")


@pytest.mark.parametrize(
    "argv",
    [
        ["enter", "/pods/x", "--app", "web", "--", "/bin/ls", "--app", "-l"],  # as stage0 calls it
        ["enter", "--app=web", "/pods/x", "--", "/bin/ls", "--app", "-l"],
        ["--debug", "enter", "/pods/x", "--app", "web", "--", "/bin/ls", "--app", "-l"],
    ],
)
def test_stage1_enter_takes_app_before_the_command(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # issue #23 item 6: REMAINDER after the pod dir swallowed "--app NAME" into the command
    from stage1.nspawn import main as stage1_main
    from stage1.nspawn import run

    called: list[tuple[str, str | None, list[str]]] = []

    def enter(pod: str, app: str | None, command: list[str]) -> int:
        called.append((pod, app, command))
        return 0

    monkeypatch.setattr(run, "enter", enter)
    assert stage1_main.main(argv) == 0
    assert called == [("/pods/x", "web", ["/bin/ls", "--app", "-l"])]


def test_a_privileged_apps_command_joins_the_apps_own_mount_namespace() -> None:
    """Nothing that sets up a namespace of the command's own, the identity handed to mount-volumes
    --enter (the app's main process 77 as the pod numbers it), the rest of the profile kept."""
    app = AppSpec(name="web", rootfs="/r", exec=("/bin/server",), user=1000, group=100,
                  supplementary_gids=(5, 6), working_directory="/srv", privileged=True,
                  read_only_rootfs=True, memory_max=1 << 20)  # fmt: skip
    spec = PodSpec(uuid=SPEC.uuid, machine="web", hostname="web", apps=(app,))
    argv = enter_argv(spec, "web", ["ls", "/"], tty=False, hidden=(), main=77)
    command = argv[argv.index("--") + 1 :]
    assert command == [
        "/nspod/bin/mount-volumes",
        "--enter",
        "77",
        "1000",
        "100",
        "5,6",
        "/srv",
        "--",
        "ls",
        "/",
    ]
    keys = {a.removeprefix("--property=").split("=", 1)[0] for a in argv if a.startswith("--property=")}
    assert not keys & {"RootDirectory", "MountAPIVFS", "User", "ProtectSystem", "WorkingDirectory"}
    assert {"MemoryMax", "DevicePolicy", "Environment"} <= keys
    # without a main process (an app not privileged) the profile is whole, as before
    plain = enter_argv(spec, "web", ["ls"], tty=False, hidden=())
    assert "--property=RootDirectory=/opt/stage2/web/rootfs" in plain and plain[-1] == "ls"
