#!/usr/bin/env python3
"""bench/startup: what ``nspod version`` costs on top of starting the same Python interpreter.

    make bench-startup          (or: python3 bench/startup.py --nspod /usr/local/bin/nspod)

Both commands run interleaved in one process, after warm-up runs; medians are compared.
Target (issue #2): nspod adds at most 60 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

TARGET_MS = 60.0


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1000


def interpreter_of(script: str) -> str:
    """The Python that a console script runs (its shebang), so the baseline starts the same one."""
    with open(script, "rb") as file:
        first = file.readline().decode().strip()
    return first[2:].split()[0] if first.startswith("#!") else sys.executable


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nspod", default=shutil.which("nspod") or "nspod")
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    nspod = os.path.realpath(args.nspod)
    python = interpreter_of(nspod)
    commands = {"python3 -c pass": [python, "-c", "pass"], "nspod version": [nspod, "version"]}
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(5):  # warm the page cache and .pyc files
        for argv in commands.values():
            timed(argv)
    for _ in range(args.runs):
        for name, argv in commands.items():
            samples[name].append(timed(argv))
    base, ours = (statistics.median(samples[n]) for n in commands)
    added = ours - base
    print(f"runs: {args.runs} each, interleaved; interpreter {python}")
    for name in commands:
        data = sorted(samples[name])
        print(
            f"  {name:18} median {statistics.median(data):6.1f} ms  (min {data[0]:.1f}, max {data[-1]:.1f})"
        )
    verdict = "meets" if added <= TARGET_MS else "MISSES"
    ratio = ours / base
    print(f"nspod adds {added:.1f} ms ({ratio:.2f}x the bare interpreter)")
    print(f"{verdict} the target: at most {TARGET_MS:.0f} ms added")
    return 0 if added <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
