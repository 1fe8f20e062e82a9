#!/usr/bin/env python3
"""bench/cold: the cold ``nspod run`` of issue #26 (item 4) alone, against raw nspawn and the floor,
and where its time goes.

    tests/harness/in-testhost.sh .venv/bin/python bench/cold.py [--runs N] [--trace RUNS] [--ab DIR]

Rows as bench/warm.py measures them (the same commands, interleaved, rotated, after 2 warm-ups):
raw nspawn of the image's rootfs, the floor (the pod's own nspawn line booting to ``exit.target``)
and ``nspod run IMAGE`` with ``NSPOD_POOL=0``; no keeper, so it runs in a fraction of warm's time.

``--ab DIR`` adds a row ``cold B``: the same run with another checkout's code (``PYTHONPATH=DIR``),
for same-run comparisons of a change.

``--trace RUNS`` first traces that many runs: the pod's systemd logging every unit it starts to the
console (``--debug``: its lines reach the host's journal with their times), the ``nspod`` process
under ``strace -f -ttt`` (its process spawns and D-Bus messages), both on the wall clock: the first
run's time line in ms from the command's start, then the split (each phase's median).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from start import build_image, setup, timed
from warm import floor_command

# what the time line shows of strace's output: spawns, exits, the D-Bus socket's traffic
STRACE = "execve,exit_group,connect,sendmsg"
INTERESTING = re.compile(r"execve\(|exit_group|connect\(.*(bus|journal)|sendmsg\(.*(StartTransient|Unref)")


# The split: each phase ends at the first event matching its pattern (after the previous one's),
# on the time line of a traced run; a phase not seen is left out of that run.
PHASES = (
    ("interpreter, imports, the pod prepared on disk", r"nspod-event.*: creat"),
    ("the rest of stage0, stage1 loaded, to the network", r"execve\(\"/usr/lib/cni/"),
    ("the network up (CNI, nft)", r"connect\(.*system_bus_socket"),
    ("D-Bus, the unit's start job queued", r"systemd\[1\]: Starting nspod-"),
    ("nspawn, to the pod's systemd running", r"systemd 2\d\d.* running in system mode"),
    ("the pod's systemd: units loaded, jobs queued", r"Queued start job for default target"),
    (
        "boot to the app's end (journald, the app unit)",
        r"\]: (?!reaper-|ready-|shutdown)[a-z0-9-]+\.service: Deactivated",
    ),
    ("the reaper", r"reaper-[a-z0-9-]+\.service: Deactivated"),
    ("shutdown.service (report --ended)", r"shutdown\.service: Deactivated"),
    ("to systemd-shutdown", r"Shutting down\."),
    ("systemd-shutdown, nspawn's end", r"Exiting container"),
    (
        "machined, the network down, the end's events",
        r"systemd\[1\]: nspod-[0-9a-f-]+\.service: Deactivated",
    ),
    ("after the unit's end (journal, relay, exit)", r"command returns"),
)


def split(events: list[tuple[float, str]], start: float) -> dict[str, float]:
    """ms per phase of one traced run's sorted events."""
    phases: dict[str, float] = {}
    at, index = start, 0
    for name, pattern in PHASES:
        found = next(
            ((i, when) for i, (when, what) in enumerate(events) if i >= index and re.search(pattern, what)),
            None,
        )
        if found is not None:
            index, when = found
            phases[name] = (when - at) * 1000
            at = when
    return phases


def timeline(strace: str, journal: str) -> list[tuple[float, str]]:
    """strace's spawns and D-Bus messages and the journal's lines, as (wall clock, what)."""
    events = []
    for line in strace.splitlines():
        pid, stamp, rest = [*line.split(None, 2), "", ""][:3]
        if INTERESTING.search(rest):
            events.append((float(stamp), f"[{pid}] {rest[:110]}"))
    for line in journal.splitlines():
        when, _, rest = line.partition(" ")
        with contextlib.suppress(ValueError):
            events.append((float(when), f"journal: {rest[:200]}"))
    return events


def imports(python: list[str], argv: list[str], env: dict[str, str]) -> None:
    """The command's imports (``-X importtime``, which weighs on them), the largest top-level ones."""
    done = subprocess.run([python[0], "-X", "importtime", *python[1:], *argv], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    rows = [line.split("|") for line in done.stderr.splitlines() if line.startswith("import time:")][1:]
    top = sorted((int(us), name.strip()) for _, us, name in rows if not name.startswith("   "))
    print(
        f"imports (-X importtime, its own weight in): {sum(us for us, _ in top) / 1000:.1f} ms at top level"
    )
    for us, name in top[-15:]:
        print(f"  {us / 1000:6.1f} ms {name}")


def traced(base: list[str], image_id: str, env: dict[str, str]) -> tuple[float, list[tuple[float, str]]]:
    """One cold run, traced: its start and its sorted events."""
    with tempfile.TemporaryDirectory(prefix="nspod-cold-trace-") as tmp:
        out = Path(tmp) / "strace"
        start = time.time()
        argv = ["strace", "--seccomp-bpf", "-f", "-ttt", "-s", "80", "-e", f"trace={STRACE}", "-o", str(out),
                *base, "--debug", "run", image_id]  # fmt: skip
        subprocess.run(argv, env=env, capture_output=True, check=False)
        end = time.time()
        time.sleep(0.3)  # the journal's last lines
        journal = subprocess.run(["journalctl", "-q", "--since", f"@{start:.6f}", "-o", "short-unix"],
                                 capture_output=True, text=True, check=False).stdout  # fmt: skip
        events = [(start, "command starts"), (end, "command returns"), *timeline(out.read_text(), journal)]
    return start, sorted(events)


def trace(base: list[str], image_id: str, env: dict[str, str], runs: int) -> None:
    """``runs`` cold runs, traced: the first one's time line, every phase's median, the imports."""
    env = {**env, "NSPOD_POOL": "0"}
    phases: dict[str, list[float]] = {}
    for round_ in range(runs):
        subprocess.run([*base, "gc", "--grace-period=0s"], env=env, capture_output=True)
        start, events = traced(base, image_id, env)
        if round_ == 0:
            for when, what in events:
                print(f"{(when - start) * 1000:8.1f}  {what}")
        for name, ms in split(events, start).items():
            phases.setdefault(name, []).append(ms)
    print(f"the split (strace on spawns and D-Bus, the pod's systemd at --debug; medians of {runs}, ms):")
    for name, values in phases.items():
        print(f"  {statistics.median(values):7.1f}  {name} ({len(values)} seen)")
    python = base[: base.index("--dir")]
    imports(python, [*base[len(python) :], "run", image_id], env)


def option(name: str) -> str | None:
    """A value option of this bench's own, taken out of sys.argv before setup() parses the rest."""
    if name not in sys.argv:
        return None
    at = sys.argv.index(name)
    value = sys.argv[at + 1]
    del sys.argv[at : at + 2]
    return value


def main() -> int:
    tracing = int(option("--trace") or 0)
    other = option("--ab")  # another checkout's code, run as a row of its own in the same rounds
    args, work, env, base = setup(__doc__, "cold", 15)
    try:
        aci = build_image(work)
        image_id = subprocess.run([*base, "fetch", str(aci)], capture_output=True, text=True, check=True,
                                  env=env).stdout.strip()  # fmt: skip
        rootfs = work / "data/images/layers" / image_id / "rootfs"
        commands = {
            "raw": ["systemd-nspawn", "-q", "--register=no", "--read-only", "-D", str(rootfs), "/bin/true"],
            "floor": floor_command(base, image_id, env, work),
            "cold": [*base, "run", image_id],
            "no net": [*base, "run", "--net=none", image_id],  # what the pod's network costs (no target)
        }
        cold_env = {**env, "NSPOD_POOL": "0"}
        envs = {name: cold_env for name in commands}
        if other:
            commands["cold B"] = commands["cold"]
            envs["cold B"] = {**cold_env, "PYTHONPATH": other}
        if tracing:
            trace(base, image_id, env, tracing)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        names = list(commands)
        for round_ in range(args.runs + 2):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                subprocess.run([*base, "gc", "--grace-period=0s"], env=env, capture_output=True)
                time.sleep(0.2)
                elapsed = timed(commands[name], envs[name], check=name != "floor")
                if round_ >= 2:
                    samples[name].append(elapsed)
        medians = {name: statistics.median(values) for name, values in samples.items()}
        after = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"runs: {args.runs} each (ms); load average {load} before, {after} after")
        for name, values in samples.items():
            raw, floor = medians[name] / medians["raw"], medians[name] / medians["floor"]
            print(f"  {name:6} median {medians[name]:7.1f}  min {min(values):7.1f}  max {max(values):7.1f}"
                  f"  ({raw:.2f}x raw, {floor:.2f}x floor)")  # fmt: skip
        ratio = medians["cold"] / medians["floor"]
        print(f"  cold / floor = {ratio:.2f}x (target ≤ 1.5x): {'meets' if ratio <= 1.5 else 'MISSES'}")
        return 0 if ratio <= 1.5 else 1
    finally:
        subprocess.run([*base, "gc", "--grace-period=0s"], capture_output=True, env=env)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
