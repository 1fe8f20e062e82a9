#!/usr/bin/env python3
"""bench/userns: what --private-users costs (issue #11, item 5), against what rkt paid for it.

    make bench-userns       (runs inside a test host when systemd is not PID 1)

An image of a real tree (/usr/lib/python3, thousands of files) already in the store; in one run,
interleaved, medians after a warm-up:

* ``nspod prepare IMAGE`` and ``nspod prepare --private-users IMAGE``: the ratio is the cost of a
  user namespace at prepare (a range picked under a lock; nothing is chowned: ID-mapped mounts);
* rkt's way, the baseline: ``cp -a`` of the rendered tree and ``chown -R`` of the copy into the
  pod's range (rkt needed --no-overlay and a chown of every file);
* ``nspod run`` of ``/bin/true`` with and without --private-users: start to exit.

Target: prepare with --private-users ≤ 1.1× prepare without (unchanged).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from start import build_image, interleaved, setup

TARGET = 1.1
TREE = Path("/usr/lib/python3")


def big_image(work: Path, base: list[str], env: dict[str, str]) -> str:
    """An image of /bin/true plus a copy of TREE (what a real image holds), fetched into the store."""
    aci = build_image(work)  # the /bin/true image's layout is kept next to it
    shutil.copytree(TREE, work / "layout/rootfs/usr/lib/python3", symlinks=True)
    subprocess.run([*base, "image", "build", "--overwrite", str(work / "layout"), str(aci)], check=True,
                   env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    fetched = subprocess.run([*base, "fetch", str(aci)], capture_output=True, text=True, check=True, env=env)
    return fetched.stdout.strip()


def main() -> int:
    args, work, env, base = setup(__doc__, "userns", 9)
    try:
        image = big_image(work, base, env)
        rootfs = work / "data/images/layers" / image / "rootfs"
        files = sum(len(f) + len(d) for _, d, f in os.walk(rootfs))
        copy = work / "copy"
        commands = {
            "nspod prepare": [*base, "prepare", image],
            "nspod prepare --private-users": [*base, "prepare", "--private-users", image],
            "rkt's way: cp -a + chown -R": [
                "sh",
                "-c",
                f"rm -rf {copy} && cp -a {rootfs} {copy} && chown -R 524288:524288 {copy}",
            ],
            "nspod run": [*base, "run", image],
            "nspod run --private-users": [*base, "run", "--private-users", image],
        }
        between = [*base, "gc", "--grace-period=0s", "--expire-prepared=0s"]
        samples = interleaved(commands, args.runs, env, warmups=1, between=between)
        medians = {name: statistics.median(values) for name, values in samples.items()}
        print(f"image: {files} files and directories; {args.runs} runs each, interleaved (ms)")
        plain = medians["nspod prepare"]
        for name, value in medians.items():
            print(f"  {name:32} median {value:8.1f}  ({value / plain:.2f}x nspod prepare)")
        ratio = medians["nspod prepare --private-users"] / plain
        verdict = "meets" if ratio <= TARGET else "MISSES"
        print(f"prepare with --private-users is {ratio:.2f}x without: {verdict} the ≤ {TARGET}x target")
        return 0 if ratio <= TARGET else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
