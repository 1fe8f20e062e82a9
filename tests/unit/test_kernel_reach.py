"""What of the kernel an app reaches by default (issue #23, items 4 and 5), planned: no namespaces
(RestrictNamespaces=), no io_uring, the kernel files runc and podman mask hidden, and each of them
lifted only on purpose. The attacks themselves are in tests/attacks/ (test_namespaces, test_proc)."""

from __future__ import annotations

import dataclasses

from stage0.api.pods import RELAXABLE
from stage0.options import InsecureOption, parse_insecure_options
from stage1.abi import AppSpec, PodSpec
from stage1.app_unit import HIDDEN, described, profile
from stage1.enter import enter_argv
from stage1.seccomp import DEFAULT_DENIED, IO_URING, syscall_filter

APP = AppSpec(name="web", rootfs="/r", exec=("/bin/web",))
# runc's and podman's masked paths (containers/common DefaultMaskedPaths): files and directories
PODMAN_MASKED = (
    "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi",
    "/proc/timer_list", "/proc/timer_stats", "/sys/dev/block", "/sys/devices/virtual/powercap",
    "/sys/firmware", "/sys/fs/selinux", "/proc/interrupts",
)  # fmt: skip


def relaxed(*words: str) -> AppSpec:
    return dataclasses.replace(APP, relaxed=words)


def test_no_app_makes_namespaces_by_default() -> None:
    assert ("RestrictNamespaces", "yes") in profile(APP)
    assert described(APP)["namespaces"] == "restricted"


def test_a_non_root_app_is_restricted_as_well() -> None:
    user = dataclasses.replace(APP, user=1000)
    assert ("RestrictNamespaces", "yes") in profile(user) and ("NoNewPrivileges", "yes") in profile(user)


def test_insecure_namespaces_lifts_the_restriction_alone() -> None:
    settings = profile(relaxed("namespaces"))
    assert "RestrictNamespaces" not in dict(settings)
    assert syscall_filter(relaxed("namespaces")) == syscall_filter(APP)  # io_uring stays denied
    assert described(relaxed("namespaces"))["namespaces"] == "allowed"


def test_the_other_words_keep_namespaces_restricted() -> None:
    for word in ("seccomp", "capabilities", "paths"):
        assert ("RestrictNamespaces", "yes") in profile(relaxed(word)), word


def test_namespaces_is_an_insecure_option_of_all_run() -> None:
    assert parse_insecure_options("namespaces") == {InsecureOption.NAMESPACES}
    assert InsecureOption.NAMESPACES in parse_insecure_options("all-run")
    assert "namespaces" in RELAXABLE


def test_io_uring_is_in_the_default_deny_list() -> None:
    assert set(IO_URING) == {"io_uring_setup", "io_uring_enter", "io_uring_register"}
    (line,) = (v for k, v in syscall_filter(APP) if k == "SystemCallFilter")
    assert set(IO_URING) <= set(line.removeprefix("~").split())
    assert set(IO_URING) <= set(DEFAULT_DENIED)


def test_an_isolator_that_allows_io_uring_lifts_it_on_purpose() -> None:
    app = dataclasses.replace(APP, seccomp_mode="remove", seccomp_set=("ptrace",))
    (line,) = (v for k, v in syscall_filter(app) if k == "SystemCallFilter")
    assert line == "~ptrace"


def test_every_path_podman_masks_is_hidden() -> None:
    assert set(PODMAN_MASKED) <= set(HIDDEN)
    for path in ("/proc/keys", "/proc/key-users", "/proc/timer_list", "/proc/slabinfo"):
        assert path in HIDDEN


def test_hidden_paths_are_covered_in_the_app_and_in_what_enter_runs() -> None:
    hidden = ("/proc/keys", "/proc/timer_list", "/proc/acpi")
    settings = profile(APP, hidden)
    assert ("BindReadOnlyPaths", "/dev/null:/proc/keys /dev/null:/proc/timer_list") in settings
    assert ("TemporaryFileSystem", "/proc/acpi:ro") in settings
    spec = PodSpec(uuid="0" * 8 + "-0000-4000-8000-" + "0" * 12, machine="web", hostname="web", apps=(APP,))
    argv = enter_argv(spec, "web", ["/bin/sh"], tty=False, hidden=hidden)
    assert "--property=BindReadOnlyPaths=/dev/null:/proc/keys /dev/null:/proc/timer_list" in argv
    assert "--property=TemporaryFileSystem=/proc/acpi:ro" in argv
    assert "--property=RestrictNamespaces=yes" in argv
