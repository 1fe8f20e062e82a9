"""The pod planner (stage0/planner.py), pure: requests and images held in memory in, the stage1 pod
spec and the appc PodManifest out — env precedence, exec look-up, users and groups, volumes and
mounts, names, isolators, and every error, without root, systemd or a store."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stage0.errors import UsageError
from stage0.planner import PlannedImage, PrepareError, default_app_name, plan_pod
from stage0.requests import AppRequest, PodRequest
from stage0.schema.boundary import check_structure, parse_image_manifest
from stage0.schema.isolators import parse_isolators
from stage1.abi import DEFAULT_STOP_TIMEOUT, AppSpec, PodSpec, VolumeSpec
from tests.unit.memory_tree import MemoryTree

UUID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0"
ID = "sha512-" + "ab" * 64


def image(app: dict[str, Any] | None = None, name: str = "example.com/web", **extra: Any) -> PlannedImage:
    manifest: dict[str, Any] = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name, **extra}
    if app is not None:
        manifest["app"] = {"user": "0", "group": "0", **app}
    parsed = parse_image_manifest(json.dumps(manifest).encode(), name, trusted=True)
    return PlannedImage(name, ID, {"version": "1.0"}, parsed, MemoryTree())


SERVER = {"exec": ["/bin/server", "--port=80"], "environment": [{"name": "MODE", "value": "image"}]}


def plan(*apps: AppRequest, images: list[PlannedImage] | None = None, **pod: Any) -> PodSpec:
    request = PodRequest(apps=apps or (AppRequest("web"),), **pod)
    return plan_pod(UUID, request, images or [image(SERVER) for _ in request.apps])[0]


def one(*apps: AppRequest, images: list[PlannedImage] | None = None, **pod: Any) -> AppSpec:
    return plan(*apps, images=images, **pod).apps[0]


# the environment, low to high: host < image < env file < --set-env < --environment


def test_the_image_environment_is_the_base() -> None:
    assert dict(one().env)["MODE"] == "image"


@pytest.mark.parametrize(
    ("pod", "app", "expected"),
    [
        ({"inherit_env": {"MODE": "host"}}, (), "image"),
        ({"env_file": (("MODE", "file"),)}, (), "file"),
        ({"env_file": (("MODE", "file"),), "set_env": (("MODE", "set"),)}, (), "set"),
        ({"set_env": (("MODE", "set"),)}, (("MODE", "app"),), "app"),
    ],
)
def test_environment_precedence(
    pod: dict[str, Any], app: tuple[tuple[str, str], ...], expected: str
) -> None:
    assert dict(one(AppRequest("web", environment=app), **pod).env)["MODE"] == expected


def test_host_variables_fill_in_below_everything() -> None:
    assert dict(one(inherit_env={"HOME": "/root"}).env)["HOME"] == "/root"


def test_ac_app_name_is_stage1s_to_set() -> None:
    assert "AC_APP_NAME" not in dict(one(set_env=(("AC_APP_NAME", "x"),)).env)


def test_the_environment_is_sorted_for_a_stable_spec() -> None:
    env = one(set_env=(("Z", "1"), ("A", "2"))).env
    assert [k for k, _ in env] == sorted(k for k, _ in env)


# the executable


def test_the_images_exec_and_arguments() -> None:
    assert one().exec == ("/bin/server", "--port=80")


def test_exec_replaces_the_command_and_its_arguments() -> None:
    assert one(AppRequest("web", exec="/bin/sh")).exec == ("/bin/sh",)


def test_exec_with_arguments() -> None:
    assert one(AppRequest("web", exec="/bin/sh", args=("-c", "true"))).exec == ("/bin/sh", "-c", "true")


def test_arguments_alone_replace_the_images() -> None:
    assert one(AppRequest("web", args=("--port=8080",))).exec == ("/bin/server", "--port=8080")


def test_a_bare_command_is_searched_in_path() -> None:
    assert one(AppRequest("web", exec="tool")).exec == ("/usr/bin/tool",)


def test_the_apps_own_path_is_searched() -> None:
    with pytest.raises(PrepareError, match="'tool' is not an executable"):
        one(AppRequest("web", exec="tool", environment=(("PATH", "/opt/bin"),)))


def test_a_relative_path_is_taken_from_the_root() -> None:
    assert one(AppRequest("web", exec="bin/sh")).exec == ("/bin/sh",)


def test_a_missing_executable_is_an_error_with_a_hint() -> None:
    with pytest.raises(PrepareError, match="'/bin/nope' is not an executable file in the image") as caught:
        one(AppRequest("web", exec="/bin/nope"))
    assert "--exec" in caught.value.hint


def test_an_image_without_an_app_needs_exec() -> None:
    with pytest.raises(PrepareError, match="has no app to run"):
        one(images=[image(None)])
    assert one(AppRequest("web", exec="/bin/sh"), images=[image(None)]).exec == ("/bin/sh",)


# users and groups: a name in the image, a number, or the owner of a path


@pytest.mark.parametrize(
    ("user", "group", "expected"),
    [
        ("0", "0", (0, 0)),
        ("web", "web", (1000, 2000)),
        ("1234", "staff", (1234, 50)),
        ("/srv/data", "/srv/data", (33, 34)),
    ],
)
def test_user_and_group_resolution(user: str, group: str, expected: tuple[int, int]) -> None:
    app = one(AppRequest("web", user=user, group=group))
    assert (app.user, app.group) == expected


def test_the_images_user_unless_overridden() -> None:
    images = [image({**SERVER, "user": "web", "group": "web"})]
    assert (one(images=images).user, one(AppRequest("web", user="0"), images=images).user) == (1000, 0)


@pytest.mark.parametrize(("user", "group", "what"), [("nobody", "0", "user"), ("0", "nogroup", "group")])
def test_an_unknown_user_or_group_is_an_error(user: str, group: str, what: str) -> None:
    with pytest.raises(PrepareError, match=f"{what} '{user if what == 'user' else group}' is not in"):
        one(AppRequest("web", user=user, group=group))


def test_supplementary_groups_come_from_the_image() -> None:
    assert one(images=[image({**SERVER, "supplementaryGIDs": [5, 6]})]).supplementary_gids == (5, 6)


# working directory, handlers, readiness, sockets, stop timeout, isolators


@pytest.mark.parametrize(
    ("image_dir", "flag", "expected"), [(None, None, "/"), ("/srv", None, "/srv"), ("/srv", "/tmp", "/tmp")]
)
def test_working_directory(image_dir: str | None, flag: str | None, expected: str) -> None:
    app = {**SERVER, **({"workingDirectory": image_dir} if image_dir else {})}
    assert one(AppRequest("web", working_dir=flag), images=[image(app)]).working_directory == expected


def test_event_handlers_in_their_order() -> None:
    handlers = [
        {"name": "pre-start", "exec": ["/bin/sh", "-c", "prepare"]},
        {"name": "post-stop", "exec": ["/bin/sh", "-c", "clean"]},
    ]
    app = one(images=[image({**SERVER, "eventHandlers": handlers})])
    assert (app.pre_start, app.post_stop) == ((("/bin/sh", "-c", "prepare"),), (("/bin/sh", "-c", "clean"),))


def test_the_notify_annotation_makes_an_app_notify() -> None:
    annotations = [{"name": "appc.io/executor/supports-systemd-notify", "value": "true"}]
    assert one(images=[image(SERVER, annotations=annotations)]).notify
    assert not one().notify


def test_socket_activated_ports_become_sockets() -> None:
    ports = [
        {"name": "http", "protocol": "tcp", "port": 80, "socketActivated": True},
        {"name": "admin", "protocol": "tcp", "port": 81},
    ]
    assert one(images=[image({**SERVER, "ports": ports})]).sockets == ("http",)


def test_stop_timeout_default_and_flag() -> None:
    assert one().stop_timeout == DEFAULT_STOP_TIMEOUT
    assert one(AppRequest("web", stop_timeout=2.5)).stop_timeout == 2.5


ISOLATORS = [
    {"name": "resource/memory", "value": {"limit": "512M"}},
    {"name": "resource/cpu", "value": {"limit": "500m"}},
    {"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_NET_BIND_SERVICE"]}},
    {"name": "os/linux/no-new-privileges", "value": True},
]


def test_isolators_become_limits() -> None:
    app = one(images=[image({**SERVER, "isolators": ISOLATORS})])
    limits = (app.memory_max, app.cpu_quota, app.capabilities, app.no_new_privileges)
    assert limits == (512_000_000, 50, ("CAP_NET_BIND_SERVICE",), True)


def test_requested_isolators_replace_the_images() -> None:
    memory = {"isolators": [{"name": "resource/memory", "value": {"limit": "1G"}}]}
    requested = parse_isolators(memory, "", allow_unknown=False)
    app = one(AppRequest("web", isolators=requested), images=[image({**SERVER, "isolators": ISOLATORS})])
    assert (app.memory_max, app.cpu_quota, app.capabilities) == (1_000_000_000, None, None)


def test_cpu_shares_and_oom_score_adjustment() -> None:
    isolators = [
        {"name": "os/linux/cpu-shares", "value": 512},
        {"name": "os/linux/oom-score-adj", "value": 300},
    ]
    app = one(images=[image({**SERVER, "isolators": isolators})])
    assert (app.cpu_shares, app.oom_score_adj) == (512, 300)


def test_retain_and_remove_sets_together_are_refused() -> None:
    from stage0.errors import SchemaError

    both = [
        {"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_CHOWN"]}},
        {"name": "os/linux/capabilities-remove-set", "value": {"set": ["CAP_KILL"]}},
    ]
    with pytest.raises(SchemaError, match="capabilities"):
        image({**SERVER, "isolators": both})


def test_relaxed_parts_of_the_profile_reach_every_app() -> None:
    spec = plan(AppRequest("web", name="a"), AppRequest("web", name="b"), relaxed=("seccomp",))
    assert [a.relaxed for a in spec.apps] == [("seccomp",), ("seccomp",)]


def test_command_line_isolators_override_the_images_kind_by_kind() -> None:
    from stage0.requests import parse_isolator_flag

    flags = (parse_isolator_flag("--memory", "1G"), parse_isolator_flag("--caps-remove", "CAP_KILL"))
    app = one(AppRequest("web", overrides=flags), images=[image({**SERVER, "isolators": ISOLATORS})])
    # memory from the flag, CPU still the image's; the image's retain set gives way to the remove set
    assert (app.memory_max, app.cpu_quota) == (1_000_000_000, 50)
    assert (app.capabilities, app.capabilities_removed) == (None, ("CAP_KILL",))


def test_supplementary_gids_from_the_command_line() -> None:
    request = AppRequest("web", supplementary_gids=(7,))
    assert one(request, images=[image({**SERVER, "supplementaryGIDs": [5, 6]})]).supplementary_gids == (7,)


def test_no_isolators_no_limits() -> None:
    app = one()
    assert (app.memory_max, app.cpu_quota, app.capabilities, app.no_new_privileges) == (
        None,
        None,
        None,
        False,
    )


# volumes and mounts

DATA = VolumeSpec(name="data", kind="host", source="/srv/data")
SCRATCH = VolumeSpec(name="scratch", kind="empty", mode=0o1777)


def test_pod_wide_and_per_app_mounts() -> None:
    request = AppRequest("web", mounts=(("scratch", "/tmp", False),))
    app = one(request, volumes=(DATA, SCRATCH), mounts=(("data", "/data", True),))
    assert app.mounts == (("data", "/data", True), ("scratch", "/tmp", False))


def test_a_volume_named_like_a_mount_point_is_mounted_there() -> None:
    points = [{"name": "data", "path": "/var/lib/web", "readOnly": True}]
    app = one(images=[image({**SERVER, "mountPoints": points})], volumes=(DATA,))
    assert app.mounts == (("data", "/var/lib/web", True),)


def test_an_explicit_mount_wins_over_the_mount_point_at_its_path() -> None:
    points = [{"name": "data", "path": "/var/lib/web"}]
    app = one(images=[image({**SERVER, "mountPoints": points})], volumes=(DATA, SCRATCH),
              mounts=(("scratch", "/var/lib/web", False),))  # fmt: skip
    assert app.mounts == (("scratch", "/var/lib/web", False),)


def test_a_mount_point_without_a_volume_is_left_alone() -> None:
    points = [{"name": "cache", "path": "/var/cache/web"}]
    assert one(images=[image({**SERVER, "mountPoints": points})]).mounts == ()


@pytest.mark.parametrize(
    ("volumes", "mounts", "message"),
    [
        ((), (("data", "/data", False),), "mounts volume 'data', which is not defined"),
        ((DATA, DATA), (), "two volumes have the same name"),
        ((DATA,), (("data", "relative", False),), "mount target 'relative' must be an absolute path"),
        ((DATA,), (("data", "/a/../etc", False),), "mount target '/a/../etc' must be an absolute path"),
    ],
)
def test_volume_errors(
    volumes: tuple[VolumeSpec, ...], mounts: tuple[tuple[str, str, bool], ...], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        plan(volumes=volumes, mounts=mounts)


# names


@pytest.mark.parametrize(
    ("image_name", "app_name"),
    [
        ("example.com/web", "web"),
        ("example.com/My_App", "my-app"),
        ("example.com/a/b.c", "b-c"),
        ("x/__", "app"),
    ],
)
def test_default_app_names(image_name: str, app_name: str) -> None:
    assert default_app_name(image_name) == app_name


def test_two_apps_of_one_image_need_names() -> None:
    with pytest.raises(UsageError, match="two apps are called 'web'"):
        plan(AppRequest("web"), AppRequest("web"))
    names = [a.name for a in plan(AppRequest("web", name="a"), AppRequest("web", name="b")).apps]
    assert names == ["a", "b"]


def test_a_bad_app_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="bad app name: 'Bad_Name' is not a valid AC name"):
        plan(AppRequest("web", name="Bad_Name"))


def test_no_images_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no image given"):
        plan_pod(UUID, PodRequest(apps=()), [])


# the pod


def test_machine_and_host_names() -> None:
    assert (plan().machine, plan().hostname) == (f"nspod-{UUID}", f"nspod-{UUID}")
    assert (plan(name="web").machine, plan(name="web").hostname) == ("web", "web")
    assert plan(name="web", hostname="web.example").hostname == "web.example"


def test_each_app_gets_its_images_tree() -> None:
    assert one().rootfs == MemoryTree().rootfs


def test_the_pod_manifest_is_valid_appc_and_says_what_runs() -> None:
    request = PodRequest(
        apps=(AppRequest("web", mounts=(("scratch", "/tmp", False),)),),
        name="web",
        volumes=(DATA, SCRATCH),
    )
    spec, manifest = plan_pod(UUID, request, [image(SERVER)])
    dumped = manifest.to_json()
    check_structure(dumped, "PodManifest")  # the shipped JSON Schema of appc 0.8.11
    assert dumped["acVersion"] == "0.8.11" and spec.machine == "web"
    (app,) = dumped["apps"]
    labels = [{"name": "version", "value": "1.0"}]
    assert app["name"] == "web" and app["image"] == {"id": ID, "name": "example.com/web", "labels": labels}
    assert app["mounts"] == [{"volume": "scratch", "path": "/tmp"}]
    assert dumped["volumes"] == [
        {"name": "data", "kind": "host", "source": "/srv/data"},
        {"name": "scratch", "kind": "empty", "mode": "1777", "uid": 0, "gid": 0},
    ]
    assert dumped["annotations"] == [{"name": "nspod.io/machine", "value": "web"}]
