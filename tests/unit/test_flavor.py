"""--stage1's values (issue #25): a flavor's name always means the flavor, a third-party stage1
is an absolute path that exists, and fly needs all-run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stage0.errors import FailedPreconditionError, InvalidArgumentError, UsageError
from stage0.options import InsecureOption
from stage0.pods.flavor import ALL_RUN, check_consent, check_request, name, parse, record, recorded
from stage0.pods.requests import PodRequest


@pytest.mark.parametrize(
    ("text", "parsed"), [("", ""), ("nspawn", ""), ("fly", "fly"), (" fly ", "fly"), ("kvm", "kvm")]
)
def test_flavors_are_parsed_by_name(text: str, parsed: str) -> None:
    assert parse(text) == parsed


def test_a_path_is_a_third_party_stage1_command() -> None:
    command = f"{sys.executable} -m stage1"
    assert parse(command) == command


@pytest.mark.parametrize("text", ["qemu", "stage1", "./stage1", "/no/such/stage1", "'unclosed"])
def test_anything_else_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert "\n" not in caught.value.message


def test_fly_needs_all_run() -> None:
    with pytest.raises(FailedPreconditionError):
        check_consent("fly", frozenset({"seccomp"}), ())
    check_consent("fly", frozenset(o.value for o in InsecureOption.ALL_RUN.expand()), ())
    check_consent("fly", frozenset(), tuple(sorted(ALL_RUN)))  # a pod file's insecure-options
    check_consent("", frozenset(), ())


def test_the_recorded_stage1_is_the_pods(tmp_path: Path) -> None:
    pod = str(tmp_path)
    assert recorded(pod) is None  # no pod here
    (tmp_path / "pod.json").write_text("{}")
    assert recorded(pod) == "" and name("") == "nspawn"
    record(pod, "fly")
    assert recorded(pod) == "fly"


@pytest.mark.parametrize(
    ("asked", "said"),
    [({"nets": ("default",)}, "--net=default"), ({"private_users": True}, "--private-users"),
     ({"sandbox": True}, "an app sandbox")],
)  # fmt: skip
def test_a_fly_pod_refuses_what_needs_namespaces_of_its_own(asked: dict[str, object], said: str) -> None:
    request = PodRequest(apps=(), **asked)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=said):
        check_request("fly", request)
    check_request("", request)
    check_request("fly", PodRequest(apps=(), nets=("host",)))


def test_kvm_refuses_what_it_does_not_build_yet() -> None:
    check_request("kvm", PodRequest(apps=()))
    with pytest.raises(InvalidArgumentError) as caught:
        check_request("kvm", PodRequest(apps=(), private_users=True))
    assert "kvm" in caught.value.message and "--private-users" in caught.value.message
