"""Invalid manifests, layouts and ACIs, each with the field nspod must name and actool's verdict.

A case is a small edit of a valid base document. ``actool`` is True when the spec authors' tool
rejects it too; otherwise it is the documented reason nspod is stricter (see
stage0/schema/README.md, "Where nspod and actool differ").
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Doc = dict[str, Any]

IMAGE: Doc = {
    "acKind": "ImageManifest",
    "acVersion": "0.8.11",
    "name": "example.com/app",
    "labels": [
        {"name": "version", "value": "1.0.0"},
        {"name": "os", "value": "linux"},
        {"name": "arch", "value": "amd64"},
    ],
    "app": {"exec": ["/bin/app"], "user": "0", "group": "0"},
}
POD: Doc = {
    "acKind": "PodManifest",
    "acVersion": "0.8.11",
    "apps": [{"name": "web", "image": {"id": "sha512-" + "ab" * 64}}],
}


@dataclass(frozen=True)
class Case:
    id: str
    edit: Callable[[Doc], Any]
    pointer: str  # what nspod's error must name
    base: Doc = field(default_factory=lambda: IMAGE)
    actool: bool | str = True  # True: actool rejects too; str: why nspod alone rejects

    def document(self) -> Doc:
        doc = copy.deepcopy(self.base)
        self.edit(doc)
        return doc


def setp(path: str, value: Any) -> Callable[[Doc], None]:
    """An edit that sets (or, for value ``...``, deletes) one field: ``setp("/app/user", ...)``."""

    def edit(doc: Doc) -> None:
        *parents, last = path.strip("/").split("/")
        node: Any = doc
        for step in parents:
            node = node[int(step)] if isinstance(node, list) else node[step]
        key: Any = int(last) if isinstance(node, list) else last
        if value is ...:
            del node[key]
        else:
            node[key] = value

    return edit


def app_isolator(name: str, value: Any) -> Callable[[Doc], None]:
    return setp("/app/isolators", [{"name": name, "value": value}])


def annotation(name: str, value: str) -> Callable[[Doc], None]:
    return setp("/annotations", [{"name": name, "value": value}])


def pod_volume(**volume: Any) -> Callable[[Doc], None]:
    return setp("/volumes", [{"name": "data", **volume}])


CASES: list[Case] = [
    Case("name-uppercase", setp("/name", "Example.com/App"), "/name"),
    Case("name-empty", setp("/name", ""), "/name"),
    Case("name-leading-dash", setp("/name", "-app"), "/name"),
    Case("name-missing", setp("/name", ...), "/name"),
    Case("kind-wrong", setp("/acKind", "ImageManifests"), "/acKind"),
    Case("version-not-semver", setp("/acVersion", "0.8"), "/acVersion"),
    Case("version-zero", setp("/acVersion", "0.0.0"), "/acVersion"),
    Case("label-named-name", setp("/labels/0/name", "name"), "/labels/0/name"),
    Case("label-duplicate", setp("/labels/1", {"name": "version", "value": "2"}), "/labels/1/name"),
    Case("label-name-uppercase", setp("/labels/0/name", "Version"), "/labels/0/name"),
    Case("os-unknown", setp("/labels/1/value", "windows"), "/labels/1/value"),
    Case("arch-invalid-for-linux", setp("/labels/2/value", "x86_64"), "/labels/2/value"),
    Case("app-user-missing", setp("/app/user", ...), "/app/user"),
    Case("app-group-missing", setp("/app/group", ...), "/app/group"),
    Case("workdir-relative", setp("/app/workingDirectory", "opt/app"), "/app/workingDirectory"),
    Case(
        "env-name-digit", setp("/app/environment", [{"name": "1A", "value": "x"}]), "/app/environment/0/name"
    ),
    Case(
        "event-handler-unknown",
        setp("/app/eventHandlers", [{"name": "post-start", "exec": ["/x"]}]),
        "/app/eventHandlers/0/name",
    ),
    Case(
        "event-handler-duplicate",
        setp(
            "/app/eventHandlers",
            [{"name": "pre-start", "exec": ["/x"]}, {"name": "pre-start", "exec": ["/y"]}],
        ),
        "/app/eventHandlers/1/name",
    ),
    Case(
        "port-zero", setp("/app/ports", [{"name": "www", "protocol": "tcp", "port": 0}]), "/app/ports/0/port"
    ),
    Case(
        "port-range-overflow",
        setp("/app/ports", [{"name": "www", "protocol": "tcp", "port": 65535, "count": 2}]),
        "/app/ports/0/count",
    ),
    Case(
        "port-name-uppercase",
        setp("/app/ports", [{"name": "WWW", "protocol": "tcp", "port": 80}]),
        "/app/ports/0/name",
    ),
    Case(
        "mountpoint-name-uppercase",
        setp("/app/mountPoints", [{"name": "DB", "path": "/db"}]),
        "/app/mountPoints/0/name",
    ),
    Case("isolator-unknown-in-app", app_isolator("resource/disk", {"limit": "1G"}), "/app/isolators/0/name"),
    Case(
        "isolator-apparmor-in-app",
        app_isolator("os/linux/apparmor-profile", {"profile": "x"}),
        "/app/isolators/0/name",
    ),
    Case("cpu-shares-too-low", app_isolator("os/linux/cpu-shares", 1), "/app/isolators/0/value"),
    Case("oom-score-adj-too-high", app_isolator("os/linux/oom-score-adj", 2000), "/app/isolators/0/value"),
    Case(
        "memory-default-true",
        app_isolator("resource/memory", {"default": True, "limit": "1G"}),
        "/app/isolators/0/value/default",
    ),
    Case(
        "memory-limit-1GB", app_isolator("resource/memory", {"limit": "1GB"}), "/app/isolators/0/value/limit"
    ),
    Case(
        "memory-limit-capital-K",
        app_isolator("resource/memory", {"limit": "1K"}),
        "/app/isolators/0/value/limit",
    ),
    Case(
        "block-bandwidth-default-false",
        app_isolator("resource/block-bandwidth", {"default": False, "limit": "1M"}),
        "/app/isolators/0/value/default",
    ),
    Case(
        "seccomp-remove-and-retain",
        setp(
            "/app/isolators",
            [
                {"name": "os/linux/seccomp-remove-set", "value": {"set": ["reboot"]}},
                {"name": "os/linux/seccomp-retain-set", "value": {"set": ["read"]}},
            ],
        ),
        "/app/isolators/1/name",
    ),
    Case(
        "seccomp-errno-lowercase",
        app_isolator("os/linux/seccomp-remove-set", {"set": ["reboot"], "errno": "eperm"}),
        "/app/isolators/0/value/errno",
    ),
    Case(
        "capabilities-empty-set",
        app_isolator("os/linux/capabilities-retain-set", {"set": []}),
        "/app/isolators/0/value/set",
    ),
    Case("created-not-rfc3339", annotation("created", "2014-10-27"), "/annotations/0/value"),
    Case("homepage-ftp", annotation("homepage", "ftp://example.com"), "/annotations/0/value"),
    Case(
        "annotation-duplicate",
        setp("/annotations", [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]),
        "/annotations/1/name",
    ),
    Case(
        "dependency-sha256-id",
        setp("/dependencies", [{"imageName": "example.com/base", "imageID": "sha256-abcd"}]),
        "/dependencies/0/imageID",
    ),
    Case(
        "dependency-name-missing",
        setp("/dependencies", [{"imageID": "sha512-" + "0" * 128}]),
        "/dependencies/0/imageName",
    ),
    # pods
    Case(
        "pod-duplicate-apps",
        lambda d: d["apps"].append({"name": "web", "image": {"id": "sha512-" + "cd" * 64}}),
        "/apps/1/name",
        base=POD,
    ),
    Case("pod-app-name-uppercase", setp("/apps/0/name", "Web"), "/apps/0/name", base=POD),
    Case("pod-host-volume-relative", pod_volume(kind="host", source="data"), "/volumes/0/source", base=POD),
    Case(
        "pod-empty-volume-with-source",
        pod_volume(kind="empty", source="/data"),
        "/volumes/0/source",
        base=POD,
    ),
    Case(
        "pod-host-volume-with-mode",
        pod_volume(kind="host", source="/data", mode="0755"),
        "/volumes/0/mode",
        base=POD,
    ),
    Case(
        "pod-volume-duplicate",
        setp("/volumes", [{"name": "d", "kind": "empty"}, {"name": "d", "kind": "empty"}]),
        "/volumes/1/name",
        base=POD,
    ),
    Case(
        "pod-host-ip-invalid",
        setp("/ports", [{"name": "www", "hostPort": 80, "hostIP": "1.2.3"}]),
        "/ports/0/hostIP",
        base=POD,
    ),
    # nspod is stricter than actool here; each difference is deliberate and documented
    Case(
        "identifier-double-dot",
        setp("/name", "example..com/app"),
        "/name",
        actool="the spec's regular expression forbids two separators in a row; actool checks characters",
    ),
    Case(
        "dependency-id-not-hex",
        setp("/dependencies", [{"imageName": "example.com/b", "imageID": "sha512-zz"}]),
        "/dependencies/0/imageID",
        actool="an image ID is sha512- and 128 hex digits; actool checks the prefix only",
    ),
    Case(
        "notify-annotation-not-boolean",
        annotation("appc.io/executor/supports-systemd-notify", "yes"),
        "/annotations/0/value",
        actool="the spec allows only 'true' and 'false'; actool does not check",
    ),
    Case(
        "capability-unknown",
        app_isolator("os/linux/capabilities-retain-set", {"set": ["CAP_FLY"]}),
        "/app/isolators/0/value/set/0",
        actool="nspod refuses capability names Linux does not have",
    ),
    Case(
        "supplementary-gid-negative",
        setp("/app/supplementaryGIDs", [-1]),
        "/app/supplementaryGIDs/0",
        actool="group IDs are unsigned; actool's Go int type takes negative numbers",
    ),
    Case(
        "event-handler-empty-exec",
        setp("/app/eventHandlers", [{"name": "pre-start", "exec": []}]),
        "/app/eventHandlers/0/exec",
        actool="a handler with nothing to run is a mistake; actool does not check",
    ),
    Case(
        "mountpoint-relative",
        setp("/app/mountPoints", [{"name": "db", "path": "db"}]),
        "/app/mountPoints/0/path",
        actool="a mount point is a path in the app's root; nspod requires it absolute",
    ),
]
