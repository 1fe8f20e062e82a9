#!/usr/bin/env python3
"""bench/flavors: warm start→exit of a one-app ``/bin/true`` pod on each stage1 flavor, each
against its own floor measured in the same run (issue #25).

    make bench-start        (runs inside a test host when systemd is not PID 1)

Interleaved, each command followed by a gc (order rotated every round), medians after warm-ups:

* nspawn: ``nspod run IMAGE --exec=/bin/true`` against a bare ``systemd-nspawn -D ROOT /bin/true``
  on the same rendered root (shown, no target: issue #4's 2.5× was retired by #14; bench/start.py
  has the details);
* fly: ``nspod --stage1=fly run --insecure-options=all-run IMAGE --exec=/bin/true`` against
  ``systemd-run --wait -p RootDirectory=ROOT /bin/true`` on the same rendered root: one unit of
  the host's systemd in that root, what a fly app is without nspod (target ≤ 1.5×);
* kvm: ``nspod --stage1=kvm run IMAGE --exec=/bin/true`` against the flavor's own QEMU command
  booting the same kernel and tree straight to power-off (bench/kvmfloor.py), labelled with the
  acceleration used (target ≤ 1.5×); a third of the rounds (a boot is seconds under TCG); skipped
  where QEMU or the flavor's kernel and initramfs are missing.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from start import build_image, interleaved, setup

from stage0.pods.flavor import BUILT, Flavor
from stage1.app_unit import pod_etc


@dataclass(frozen=True)
class Row:
    flavor: Flavor
    nspod: list[str]
    floor_name: str
    floor: list[str]
    target: float | None  # None: shown, not a target (nspawn's retired by issue #14)
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
            None,
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
    return measured, skipped


def kvm_row(base: list[str], env: dict[str, str], image_id: str, work: Path) -> Row | str:
    """The kvm row (its floor on a pod prepared for it), or why it is skipped."""
    from stage1.kvm import assets, qemu

    where = assets.assets_dir()
    missing = [p for p in (qemu.QEMU, os.path.join(where, assets.KERNEL)) if not os.path.exists(p)]
    if missing:
        return f"kvm: skipped ({', '.join(missing)} missing: make install)"
    prepared = subprocess.run(
        [*base, "--stage1=kvm", "prepare", image_id, "--exec=/bin/true"],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    pod_dir = work / "data/pods/prepared" / prepared.stdout.strip().splitlines()[-1]
    accel = qemu.host_accel()
    label = "KVM" if accel is qemu.Accel.KVM else "TCG: no hardware virtualization here"
    return Row(
        Flavor.KVM,
        [*base, "--stage1=kvm", "run", image_id, "--exec=/bin/true"],
        "the flavor's QEMU booting the same kernel and tree to power-off",
        [sys.executable, str(Path(__file__).resolve().parent / "kvmfloor.py"), str(pod_dir)],
        1.5,
        label,
    )


def fly_unit_alone(base: list[str], env: dict[str, str], image_id: str, work: Path) -> list[str]:
    """The fly app's own host unit as the supervisor starts it (its profile: root, user, caps,
    seccomp, masked paths, the pod's /etc files), on a copy of the same root, waited on by
    systemd-run, without nspod: what the confinement costs over the bare floor."""
    from stage1 import hostplan as plan
    from stage1.abi import PodPaths, PodSpec
    from stage1.fly import podplan
    from stage1.fly.pod import _etc_targets, _host_spec
    from stage1.poddir import host_hidden, prepare_dirs

    uuid = (
        subprocess.run(
            [*base, "--stage1=fly", "prepare", "--insecure-options=all-run", image_id, "--exec=/bin/true"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    paths = PodPaths(str(work / "data/pods/prepared" / uuid))
    spec = _host_spec(PodSpec.from_json(Path(paths.spec).read_text()))
    prepare_dirs(spec, paths)
    app = spec.apps[0]
    root, etc = work / "unit-root", Path(paths.stage1) / "nspod/etc"
    shutil.copytree(app.rootfs, root, symlinks=True)
    _etc_targets(str(root), pod_etc(spec), str(etc))
    place = plan.Place(str(root), str(etc), "", "", "", 0, host_network=True)
    argv = podplan.app_argv(spec, app, place, (), host_hidden())
    dropped = ("--property=BindsTo=", "--property=After=", "--property=RemainAfterExit=", "--unit=")
    return [argv[0], "--wait", *(a for a in argv[1:] if not a.startswith(dropped))]


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
        # where fly's time goes (no target): its app's unit with its profile, and the Python starts
        parts = {
            "fly app's unit alone (its profile)": fly_unit_alone(base, env, image_id, work),
            "nspod --version (stage0's Python)": [*base, "--version"],
            "import stage1.fly.pod (the supervisor's)": [sys.executable, "-c", "import stage1.fly.pod"],
        }
        commands.update(parts)
        gc = [*base, "gc", "--grace-period=0s"]
        samples = interleaved(commands, args.runs, env, warmups=2, between=gc, each=True)
        kvm = kvm_row(base, env, image_id, work) if Flavor.KVM in BUILT else None
        if isinstance(kvm, Row):
            measured.append(kvm)
            pair = {"kvm: nspod": kvm.nspod, "kvm: floor": kvm.floor}
            samples |= interleaved(pair, max(3, args.runs // 3), env, warmups=1, between=gc, each=True)
        elif kvm is not None:
            skipped.append(kvm)
        medians = {name: statistics.median(values) for name, values in samples.items()}
        print(f"flavors: runs: {args.runs} each, interleaved, after 2 warm-up rounds (ms, medians)")
        print(f"  {'flavor':8} {'nspod':>8} {'floor':>8} {'ratio':>7} {'target':>7}  floor command")
        missed = []
        for row in measured:
            mine, floor = medians[f"{row.flavor}: nspod"], medians[f"{row.flavor}: floor"]
            ratio = mine / floor
            if row.target is None:
                verdict, target = "no target", "     —"
            else:
                verdict, target = ("meets" if ratio <= row.target else "MISSES"), f"{row.target:5.1f}x"
                if ratio > row.target:
                    missed.append(str(row.flavor))
            label = f" [{row.label}]" if row.label else ""
            print(
                f"  {row.flavor:8} {mine:8.1f} {floor:8.1f} {ratio:6.2f}x {target:>7}"
                f"  {row.floor_name}{label}: {verdict}"
            )
        for line in skipped:
            print(f"  {line}")
        print("  where fly's time goes (medians, ms; no target):")
        for name in parts:
            print(f"    {name:42} {medians[name]:8.1f}")
        verdict = f"MISSES the target: {', '.join(missed)}" if missed else "every row meets its target"
        print(f"flavors: {verdict}")
        return 1 if missed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
