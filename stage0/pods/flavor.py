"""A pod's stage1 flavor (issue #25): ``nspawn`` (the default, a container), ``fly`` (each app a
host unit in its own root, no isolation boundary, for host tools), ``kvm`` (each pod a VM), or a
third-party stage1 given by its absolute path (a command line, as ``--stage1`` always took).
A flavor's name always means the flavor, never a program of that name on $PATH.

The pod records the stage1 that prepared it (``flavor`` in its directory) and every later verb
runs that one, whatever the invocation's ``--stage1`` says (rkt recorded its stage1 per pod)."""

from __future__ import annotations

import enum
import os
import shlex

from stage0.errors import FailedPreconditionError, InvalidArgumentError, UsageError
from stage0.pods.requests import PodRequest

STAGE1_ANNOTATION = "nspod.io/stage1"  # in the pod manifest of a pod whose stage1 is not nspawn
RECORD = "flavor"  # in the pod directory: the flavor's name, or a third-party stage1's command line


class Flavor(enum.StrEnum):
    NSPAWN = "nspawn"
    FLY = "fly"
    KVM = "kvm"


BUILT = frozenset({Flavor.NSPAWN, Flavor.FLY, Flavor.KVM})


def parse(text: str) -> str:
    """``--stage1``'s value as recorded: ``""`` for nspawn (the built-in default), ``"fly"``, ``"kvm"``, or a
    third-party stage1's command line (its program an absolute path that exists). Anything else
    is a usage error (exit 2)."""
    text = text.strip()
    if text in ("", Flavor.NSPAWN):
        return ""
    if text in (Flavor.FLY, Flavor.KVM):
        return text
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise UsageError(f"--stage1={text}: {error}") from None
    program = words[0] if words else ""
    if not os.path.isabs(program):
        raise UsageError(
            f"--stage1={text}: not a flavor ({', '.join(Flavor)}) nor an absolute path",
            hint="a third-party stage1 is given by its absolute path",
        )
    if not os.path.isfile(program):
        raise UsageError(
            f"--stage1={text}: {program} does not exist", hint="give a stage1 that is installed"
        )
    return text


def name(stage1: str) -> str:
    """How a recorded stage1 is shown (``status``, ``list``): the flavor, or the third-party path."""
    return stage1 or Flavor.NSPAWN.value


# what --insecure-options=all-run stands for (stage0/options.py InsecureOption.ALL_RUN)
ALL_RUN = frozenset({"capabilities", "namespaces", "paths", "seccomp"})


def check_consent(stage1: str, insecure: frozenset[str], relaxed: tuple[str, ...]) -> None:
    """fly is no isolation boundary: a pod gets it only when asked with all-run (the flag, or a
    pod file's ``insecure-options``), as rkt's fly asked."""
    if stage1 != Flavor.FLY:
        return
    if (insecure | set(relaxed)) >= ALL_RUN:
        return
    raise FailedPreconditionError(
        "--stage1=fly runs apps with no isolation from the host; it needs --insecure-options=all-run",
        hint='add --insecure-options=all-run (in a pod file: insecure-options = ["all-run"])',
    )


def check_request(stage1: str, request: PodRequest) -> None:
    """What a fly pod cannot have: its apps are in the host's network (no CNI net, no port
    forwarding) and user namespace, and it is no app sandbox. Refused, not silently dropped."""
    if stage1 == Flavor.KVM:
        _check_kvm(request)
        check_kvm_request(request)
    if stage1 != Flavor.FLY:
        return
    asked = [
        *(["--net=" + ",".join(request.nets)] if request.nets and request.nets != ("host",) else []),
        *(["--port"] if request.ports else []),
        *(["--private-users"] if request.private_users else []),
        *(["an app sandbox"] if request.sandbox else []),
    ]
    if asked:
        raise InvalidArgumentError(
            f"a fly pod cannot have {', '.join(asked)}: its apps are in the host's namespaces",
            hint="drop it, or use --stage1=nspawn",
        )


def check_kvm_request(request: PodRequest) -> None:
    """A kvm pod is a virtual machine, whose kernel has a network stack of its own: it cannot share
    the host's (slirp would hand it the host's, loopback included, through QEMU). Refused."""
    if request.nets == ("host",):
        raise InvalidArgumentError(
            "--net=host: a kvm pod is a virtual machine with a kernel of its own, which cannot share "
            "the host's network stack",
            hint="use --net=default (or another CNI net), or --net=none for loopback alone",
        )


def record(pod_dir: str, stage1: str) -> None:
    if stage1:  # no record: nspawn (every pod made before flavors existed, too)
        with open(os.path.join(pod_dir, RECORD), "w") as file:
            file.write(stage1 + "\n")


def recorded(pod_dir: str) -> str | None:
    """The stage1 that prepared the pod (``""``: nspawn); None when ``pod_dir`` is no pod."""
    try:
        with open(os.path.join(pod_dir, RECORD)) as file:
            return file.read().strip()
    except FileNotFoundError:
        return "" if os.path.exists(os.path.join(pod_dir, "pod.json")) else None
    except NotADirectoryError:
        return None


def _check_kvm(request: PodRequest) -> None:
    """What the kvm flavor does not build yet: refused, not silently dropped."""
    asked = [
        *(["--private-users"] if request.private_users else []),
        *(["an app sandbox"] if request.sandbox else []),
    ]
    if asked:
        raise InvalidArgumentError(
            f"a kvm pod cannot have {', '.join(asked)} yet", hint="drop it, or use --stage1=nspawn"
        )
