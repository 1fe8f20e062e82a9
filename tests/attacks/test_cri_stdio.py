"""A CRI container's stdout and stderr are FIFOs and its writer listens on sockets (attach, stdin)
in the pod's own /run (stage1/crilog.py): a container of the same pod tries to reach another's
by every path shape — the pod's path from its own root, through the pod's PID 1 and through the
writer (/proc/PID/root, /proc/PID/fd), through its own root's parent — to read the other's output,
write lines into its log or reach its stdin. Each try reports ESCAPED or closed in its own log.

A container that reaches another's processes at all (apps share the pod's PID namespace, as in
rkt: critest's ContainerPID is skipped for it) reaches /proc/PID/fd of its processes as it reaches
/proc/PID/root: a FIFO there is one more of the victim's open files, no more (containerd's pipes
are the same in a pod sharing its PID namespace). That is held equal here, not closed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stage0.api.sandbox import add_app
from stage0.cri import logs
from stage0.options import GlobalOptions, InsecureOption
from stage0.pods.requests import AppRequest
from tests.integration.test_app_sandbox import sandbox  # noqa: F401 (a fixture)
from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd

# each try: open a path for reading (<) or writing (>) without reading from it (a FIFO's open
# returns at once: the pod's systemd holds its other end)
ATTACK = r"""
try() { if ( eval ": $1 $2" ) 2>/dev/null; then echo "ESCAPED $1$2"; else echo "closed $1$2"; fi; }
victim=; writer=
for p in /proc/[0-9]*; do
    case "$(cat $p/cmdline 2>/dev/null)" in
    *secret-line*) victim=${p#/proc/} ;;
    *cri-log*victim*) writer=${p#/proc/} ;;
    esac
done
echo "found victim=$victim writer=$writer"
for d in '<' '>'; do
    for path in /run/nspod/crilog/victim.out /run/nspod/crilog/victim.attach /run/nspod/crilog \
        /proc/1/root/run/nspod/crilog/victim.out /proc/1/root/run/nspod/crilog/victim.in \
        /proc/$writer/root/run/nspod/crilog/victim.out /proc/$writer/fd/3 /proc/$writer/fd/4 \
        /proc/self/root/../../../../run/nspod/crilog/victim.err /proc/1/cwd/run/nspod/crilog/victim.err; do
        try "$d" "$path"
    done
done
try '<' /proc/$victim/root/bin/sh
try '>' /proc/$victim/fd/1
echo done
sleep 600
"""


def _add(nspod: Nspod, uuid: str, image: Path, name: str, script: str, log: Path) -> None:
    options = GlobalOptions(dir=str(nspod.data), insecure=frozenset({InsecureOption.IMAGE}))
    logs.create_log_file(str(log))
    request = AppRequest(image=str(image), name=name, exec="/bin/sh", args=("-c", script), log_path=str(log),
                         cri_stdio=True, stdin=True)  # fmt: skip
    added = add_app(options, uuid, request, pull_policy="new")
    started = nspod("app", "start", uuid, "--app", added)
    assert started.returncode == 0, started.stderr


def test_a_container_cannot_reach_anothers_stdio(
    nspod: Nspod,
    sandbox: str,  # noqa: F811
    bb: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    victim_log, attacker_log = tmp_path / "victim" / "0.log", tmp_path / "attacker" / "0.log"
    victim = "while :; do echo secret-line; sleep 0.2; done"
    _add(nspod, sandbox, bb, "victim", victim, victim_log)
    deadline = time.monotonic() + 30
    while not victim_log.stat().st_size:
        assert time.monotonic() < deadline, "the victim never wrote"
        time.sleep(0.1)
    _add(nspod, sandbox, bb, "attacker", ATTACK, attacker_log)
    while not any(text == b"done" for _, text in logs.read_lines(str(attacker_log))):
        assert time.monotonic() < deadline + 30, logs.read_lines(str(attacker_log))
        time.sleep(0.2)
    said = [text.decode() for _, text in logs.read_lines(str(attacker_log))]
    assert said[0].startswith("found victim=") and "victim= " not in said[0], said
    assert not said[0].endswith("writer="), said
    fd_reach = next(s for s in said if s.endswith(" >/proc/" + said[0].split()[1][7:] + "/fd/1"))
    root_reach = next(s for s in said if s.endswith("/root/bin/sh"))
    escaped = [s for s in said if s.startswith("ESCAPED") and s not in (fd_reach, root_reach)]
    assert escaped == [], said
    # its own processes' descriptors: reached exactly as far as their root is (the shared PID namespace)
    assert fd_reach.split()[0] == root_reach.split()[0], "\n".join(said)
    assert b"ESCAPED" not in victim_log.read_bytes()
    assert all(text == b"secret-line" for _, text in logs.read_lines(str(victim_log)))  # nothing injected
