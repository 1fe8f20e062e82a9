#!/usr/bin/env python3
"""bench/flavors: warm start→exit of a one-app ``/bin/true`` pod on each stage1 flavor, each
against its own floor measured in the same run (issue #25).

    make bench-start        (runs inside a test host when systemd is not PID 1)

Interleaved, each command followed by a gc (order rotated every round), medians after warm-ups:

* nspawn: ``nspod run IMAGE --exec=/bin/true`` against a bare ``systemd-nspawn -D ROOT /bin/true``
  on the same rendered root (issue #4's target, ≤ 2.5×; bench/start.py has the details);
* fly: ``nspod --stage1=fly run --insecure-options=all-run IMAGE --exec=/bin/true`` against
  ``systemd-run --wait -p RootDirectory=ROOT /bin/true`` on the same rendered root: one unit of
  the host's systemd in that root, what a fly app is without nspod (target ≤ 1.5×);
* kvm: against the same QEMU command booting the same kernel straight to power-off, labelled with
  the acceleration used (target ≤ 1.5×); skipped while the kvm flavor is not built.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from start import build_image, interleaved, setup

from stage0.pods.flavor import BUILT, Flavor


@dataclass(frozen=True)
class Row:
    flavor: Flavor
    nspod: list[str]
    floor_name: str
    floor: list[str]
    target: float
    label: str = ""  # what the numbers depend on (kvm: the acceleration)


def rows(base: list[str], image_id: str, rootfs: Path) -> tuple[list[Row], list[str]]:
    """The rows this machine can measure, and why the others are skipped."""
    true = [image_id, "--exec=/bin/true"]
    measured = [
        Row(
            Flavor.NSPAWN,
            [*base, "run", *true],
            "systemd-nspawn -D ROOT /bin/true",
            ["systemd-nspawn", "-q", "--register=no", "--read-only", "-D", str(rootfs), "/bin/true"],
            2.5,
        ),
        Row(
            Flavor.FLY,
            [*base, "--stage1=fly", "run", "--insecure-options=all-run", *true],
            "systemd-run --wait -p RootDirectory=ROOT /bin/true",
            ["systemd-run", "-q", "--wait", "-p", f"RootDirectory={rootfs}", "/bin/true"],
            1.5,
        ),
    ]
    skipped = []
    if Flavor.KVM not in BUILT:
        skipped.append("kvm: skipped (kvm flavor not built)")
    else:  # its floor is the flavor's own QEMU command line: not known here until it is built
        skipped.append("kvm: skipped (no floor command for the kvm flavor yet)")
    return measured, skipped


def main() -> int:
    args, work, env, base = setup(__doc__, "flavors", 15)
    try:
        aci = build_image(work)
        image_id = subprocess.run(
            [*base, "fetch", str(aci)], capture_output=True, text=True, check=True, env=env
        ).stdout.strip()
        rootfs = work / "data/images/layers" / image_id / "rootfs"  # the root a pod renders
        measured, skipped = rows(base, image_id, rootfs)
        commands: dict[str, list[str]] = {}
        for row in measured:
            commands[f"{row.flavor}: nspod"] = row.nspod
            commands[f"{row.flavor}: floor"] = row.floor
        samples = interleaved(
            commands, args.runs, env, warmups=2, between=[*base, "gc", "--grace-period=0s"], each=True
        )
        medians = {name: statistics.median(values) for name, values in samples.items()}
        print(f"flavors: runs: {args.runs} each, interleaved, after 2 warm-up rounds (ms, medians)")
        print(f"  {'flavor':8} {'nspod':>8} {'floor':>8} {'ratio':>7} {'target':>7}  floor command")
        missed = []
        for row in measured:
            mine, floor = medians[f"{row.flavor}: nspod"], medians[f"{row.flavor}: floor"]
            ratio = mine / floor
            verdict = "meets" if ratio <= row.target else "MISSES"
            if ratio > row.target:
                missed.append(str(row.flavor))
            label = f" [{row.label}]" if row.label else ""
            print(
                f"  {row.flavor:8} {mine:8.1f} {floor:8.1f} {ratio:6.2f}x {row.target:6.1f}x"
                f"  {row.floor_name}{label}: {verdict}"
            )
        for line in skipped:
            print(f"  {line}")
        verdict = f"MISSES the target: {', '.join(missed)}" if missed else "every row meets its target"
        print(f"flavors: {verdict}")
        return 1 if missed else 0
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
