#!/usr/bin/env python3
"""bench/start: warm start→exit of a one-app ``/bin/true`` pod, against nspawn doing less.

    make bench-start        (runs inside a test host when systemd is not PID 1)

In one run, interleaved, medians after warm-ups:

* nspod: ``nspod --insecure-options=image run IMAGE --exec=/bin/true`` (image already in the store):
  prepare, transient unit, nspawn booting systemd, the app as a unit, reaper, orderly exit;
* raw: ``systemd-nspawn -q --register=no -D ROOTFS --read-only /bin/true`` on the same rendered rootfs;
* systemd-run: ``systemd-run -q --wait -p Type=oneshot systemd-nspawn … --keep-unit /bin/true``;
* nspawn --boot: the exact nspawn command line of an nspod pod (stage1 tree, systemd booting inside,
  the app as a unit), run by hand: what the pod design itself costs, without nspod's Python;
* systemd alone: the same command line booting straight to ``exit.target`` (no app, no journald):
  the floor of any pod that boots systemd inside.

Target (issue #4): nspod ≤ 2.5× raw nspawn.

Then (issue #5), start to active of a long-running pod: ``systemctl start pod@bench`` (the shipped
template, only its command pointed at this checkout) against ``systemctl start`` of a
systemd-nspawn@-style unit booting the same pod tree with ``--boot --notify-ready=yes --keep-unit``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = 2.5


def timed(argv: list[str], env: dict[str, str] | None = None, *, check: bool = True) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    elapsed = time.perf_counter() - start
    if check and result.returncode != 0:
        raise SystemExit(f"{argv[:4]}… failed ({result.returncode}): {result.stderr.decode()[-500:]}")
    return elapsed * 1000


def interleaved(
    commands: dict[str, list[str]],
    runs: int,
    env: dict[str, str],
    *,
    warmups: int,
    between: list[str],
    unchecked: frozenset[str] = frozenset(),
    each: bool = False,
) -> dict[str, list[float]]:
    """Each command once per round, ``runs`` rounds after ``warmups``, ``between`` after each round
    (``each``: after each command, and the order rotated every round, so that no command always
    runs on the heels of another's asynchronous cleanup); the samples (ms) by name. A command in
    ``unchecked`` may fail and is timed all the same."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for run in range(runs + warmups):
        order = names[run % len(names) :] + names[: run % len(names)] if each else names
        for name in order:
            elapsed = timed(commands[name], env, check=name not in unchecked)
            if run >= warmups:
                samples[name].append(elapsed)
            if each:
                subprocess.run(between, env=env, check=True, stdout=subprocess.DEVNULL)
        if not each:
            subprocess.run(between, env=env, check=True, stdout=subprocess.DEVNULL)
    return samples


def build_image(work: Path) -> Path:
    layout = work / "layout"
    (layout / "rootfs/bin").mkdir(parents=True)
    (layout / "rootfs/etc").mkdir()
    shutil.copy("/bin/busybox", layout / "rootfs/bin/busybox")
    for applet in ("sh", "true", "sleep"):
        (layout / "rootfs/bin" / applet).symlink_to("busybox")
    (layout / "rootfs/etc/passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (layout / "rootfs/etc/group").write_text("root:x:0:\n")
    for directory in ("usr", "tmp", "proc", "sys", "dev", "run"):  # raw nspawn --read-only mounts on these
        (layout / "rootfs" / directory).mkdir()
    manifest = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": "bench/true",
        "app": {"exec": ["/bin/true"], "user": "0", "group": "0"},
    }
    (layout / "manifest").write_text(json.dumps(manifest))
    aci = work / "true.aci"
    subprocess.run(
        [sys.executable, "-m", "stage0", "image", "build", str(layout), str(aci)],
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
    )
    return aci


def measure_units(
    work: Path, base: list[str], aci: Path, env: dict[str, str], runs: int
) -> dict[str, float]:
    """systemctl start pod@bench vs an nspawn@-style unit of the same tree: time until active."""
    sys.path.insert(0, str(REPO))
    from stage1.abi import PodPaths, PodSpec
    from stage1.nspawn.service import nspawn_argv
    from stage1.poddir import prepare_dirs

    etc = work / "etc"
    (etc / "pods").mkdir(parents=True)
    (etc / "pods/bench.toml").write_text(
        f'[[app]]\nimage = "{aci}"\nexec = "/bin/sh"\nargs = ["-c", "exec sleep 600"]\n'
    )
    command = f"{' '.join(base[:-1])} --local-config {etc} --insecure-options=image pod exec %i"
    template = (REPO / "units/pod@.service").read_text()
    Path("/etc/systemd/system/pod@.service").write_text(
        template.replace(
            "ExecStart=/usr/local/bin/nspod pod exec %i",
            f"Environment=PYTHONPATH={REPO}\nExecStart={command}",
        )
    )
    uuid = subprocess.run(
        [*base, "prepare", "--name=rawunit", str(aci), "--exec=/bin/sh", "--", "-c", "exec sleep 600"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()
    paths = PodPaths(str(work / "data/pods/prepared" / uuid))
    spec = PodSpec.from_json(Path(paths.spec).read_text())
    prepare_dirs(spec, paths)
    Path("/etc/systemd/system/rawunit.service").write_text(
        "[Service]\nType=notify\nSlice=machine.slice\nDelegate=yes\nKillMode=mixed\nExecStart="
        + " ".join(nspawn_argv(spec, paths))
        + "\n"
    )
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    units = {"systemctl start pod@bench": "pod@bench.service", "nspawn@-style unit": "rawunit.service"}
    samples: dict[str, list[float]] = {name: [] for name in units}
    try:
        for run in range(runs + 2):
            for name, unit in units.items():
                elapsed = timed(["systemctl", "start", unit])
                subprocess.run(["systemctl", "stop", unit], check=True)
                if run >= 2:
                    samples[name].append(elapsed)
    finally:
        for unit in units.values():
            subprocess.run(["systemctl", "stop", unit], check=False)
        Path("/etc/systemd/system/pod@.service").unlink()
        Path("/etc/systemd/system/rawunit.service").unlink()
        subprocess.run(["systemctl", "daemon-reload"], check=False)
    return {name: statistics.median(values) for name, values in samples.items()}


def setup(
    doc: str | None, name: str, runs: int
) -> tuple[argparse.Namespace, Path, dict[str, str], list[str]]:
    """A bench's command line (--runs, --nspod), its work directory, environment and nspod base command."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--nspod", default=None, help="nspod command (default: this checkout's)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix=f"nspod-bench-{name}-", dir="/var/tmp"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    nspod = args.nspod.split() if args.nspod else [sys.executable, "-m", "stage0"]
    return args, work, env, [*nspod, "--dir", str(work / "data"), "--insecure-options=image"]


def main() -> int:
    args, work, env, base = setup(__doc__, "start", 15)
    try:
        aci = build_image(work)
        image_id = subprocess.run(
            [*base, "fetch", str(aci)], capture_output=True, text=True, check=True, env=env
        ).stdout.strip()
        rootfs = work / "data/images/layers" / image_id / "rootfs"
        commands = {
            "nspod run": [*base, "run", image_id],
            "raw systemd-nspawn": [
                "systemd-nspawn",
                "-q",
                "--register=no",
                "--read-only",
                "-D",
                str(rootfs),
                "/bin/true",
            ],
            "systemd-run + nspawn": [
                "systemd-run",
                "-q",
                "--wait",
                "-p",
                "Type=oneshot",
                "-p",
                "Delegate=yes",
                "-p",
                "Slice=machine.slice",
                "systemd-nspawn",
                "-q",
                "--register=yes",
                "--keep-unit",
                "--read-only",
                "-D",
                str(rootfs),
                "/bin/true",
            ],
        }
        # the same pod, booted by hand: prepare one, let stage1 write its tree, then reuse its argv
        sys.path.insert(0, str(REPO))
        from stage1.abi import PodPaths, PodSpec
        from stage1.nspawn.service import nspawn_argv
        from stage1.poddir import prepare_dirs

        uuid = subprocess.run(
            [*base, "prepare", image_id], capture_output=True, text=True, check=True, env=env
        ).stdout.strip()
        paths = PodPaths(str(work / "data/pods/prepared" / uuid))
        spec = PodSpec.from_json(Path(paths.spec).read_text())
        prepare_dirs(spec, paths)
        by_hand = [
            "systemd-run",
            "-q",
            "--wait",
            "-p",
            "Type=notify",
            "-p",
            "NotifyAccess=all",  # as the pod's unit: its apps' readiness comes as STATUS=
            "-p",
            "Delegate=yes",
            "-p",
            "Slice=machine.slice",
            *nspawn_argv(spec, paths),
        ]
        commands["nspawn --boot (same pod)"] = by_hand
        commands["systemd alone (floor)"] = [*by_hand, "--unit=exit.target"]
        # a pod that ends before its systemd says READY=1 leaves a 'protocol' result: time it all the same
        unchecked = frozenset({"nspawn --boot (same pod)", "systemd alone (floor)"})
        samples = interleaved(
            commands,
            args.runs,
            env,
            warmups=2,
            between=[*base, "gc", "--grace-period=0s"],
            unchecked=unchecked,
        )
        medians = {name: statistics.median(values) for name, values in samples.items()}
        unit_medians = measure_units(work, base, aci, env, args.runs)
        raw = medians["raw systemd-nspawn"]
        print(f"runs: {args.runs} each, interleaved, after 2 warm-up rounds (ms)")
        for name, values in samples.items():
            print(
                f"  {name:24} median {medians[name]:7.1f}  min {min(values):7.1f}  max {max(values):7.1f}"
                f"  ({medians[name] / raw:.2f}x raw)"
            )
        print("start to active of a long-running pod (ms):")
        raw_unit = unit_medians["nspawn@-style unit"]
        for name, value in unit_medians.items():
            print(f"  {name:26} median {value:7.1f}  ({value / raw_unit:.2f}x the nspawn@-style unit)")
        ratio = medians["nspod run"] / raw
        print(
            f"nspod run is {ratio:.2f}x raw systemd-nspawn: {'meets' if ratio <= TARGET else 'MISSES'} "
            f"the ≤ {TARGET}x target"
        )
        return 0 if ratio <= TARGET else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
