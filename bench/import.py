#!/usr/bin/env python3
"""bench/import: importing a large ACI into the store against the shell doing the same work.

    make bench-import            (or: python3 bench/import.py [--size-mb 1024] [--runs 3])

Builds a layout of SIZE MiB of real file data (cut from /usr, so it compresses like an image does),
packs it as gzip and zstd ACIs with ``nspod image build``, then times, per compression, in one run:

* nspod: ``nspod --insecure-options=image fetch X.aci`` into an empty store (decompress, hash,
  validate, extract, store the blob with fsync, commit the index);
* baseline: ``gzip -dc X.aci | tee >(sha512sum) | tar -x`` (and ``zstd -dc``): the same one pass
  done by three C programs in parallel, without the fsync.

Throughput is uncompressed MiB per second; the target (issue #3) is nspod ≥ 0.8× the baseline.
Medians of ``--runs`` after one warm-up; the page cache is flushed of dirty data between runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = 0.8


def make_layout(root: Path, size: int) -> int:
    """Files of 4 KiB–4 MiB whose bytes come from /usr (binaries, libraries, text)."""
    sources = [
        p
        for d in ("/usr/lib/x86_64-linux-gnu", "/usr/bin", "/usr/share/doc", "/usr/lib/python3")
        for p in Path(d).rglob("*")
        if p.is_file() and not p.is_symlink() and p.stat().st_size > 4096
    ]
    sources.sort()
    (root / "rootfs").mkdir(parents=True)
    (root / "manifest").write_text('{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "bench/big"}')
    written, n = 0, 0
    while written < size:
        for source in sources:
            if written >= size:
                break
            data = source.read_bytes()[: 4 << 20]
            target = root / "rootfs" / f"d{n % 64:02d}" / f"{n:06d}-{source.name}"
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(data)
            written += len(data)
            n += 1
    return written


def timed(argv: list[str], *, shell: bool = False) -> float:
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    subprocess.run(argv if not shell else ["bash", "-c", argv[0]], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--workdir", default=None, help="where to put the data (default: a temp dir in /var/tmp)"
    )
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nspod-bench-", dir=args.workdir or "/var/tmp"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    nspod = [args.python, "-m", "stage0"]
    try:
        size = make_layout(work / "layout", args.size_mb << 20)
        print(f"layout: {size / 2**20:.0f} MiB of file data in {work / 'layout'}")
        ok = True
        for kind, tool in (("gzip", "gzip"), ("zstd", "zstd")):
            aci = work / f"big-{kind}.aci"
            subprocess.run(
                [*nspod, "image", "build", "--compression", kind, str(work / "layout"), str(aci)],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            tar_size = int(
                subprocess.run(
                    ["bash", "-c", f"{tool} -dc {aci} | wc -c"], capture_output=True, text=True, check=True
                ).stdout
            )
            samples: dict[str, list[float]] = {"nspod": [], "baseline": []}
            for run in range(args.runs + 1):
                store, out = work / "store", work / "out"
                for path in (store, out):
                    shutil.rmtree(path, ignore_errors=True)
                out.mkdir()
                ours = timed([*nspod, "--dir", str(store), "--insecure-options=image", "fetch", str(aci)])
                theirs = timed(
                    [f"{tool} -dc {aci} | tee >(sha512sum >/dev/null) | tar -x -C {out}"], shell=True
                )
                if run:  # the first round warms caches
                    samples["nspod"].append(ours)
                    samples["baseline"].append(theirs)
            mib = tar_size / 2**20
            ours_rate = mib / statistics.median(samples["nspod"])
            base_rate = mib / statistics.median(samples["baseline"])
            ratio = ours_rate / base_rate
            ok &= ratio >= TARGET
            print(
                f"{kind}: ACI {aci.stat().st_size / 2**20:.0f} MiB, tar {mib:.0f} MiB; "
                f"nspod {statistics.median(samples['nspod']):.2f} s ({ours_rate:.0f} MiB/s), "
                f"{tool} -dc | tee >(sha512sum) | tar -x {statistics.median(samples['baseline']):.2f} s "
                f"({base_rate:.0f} MiB/s): ratio {ratio:.2f} ({'meets' if ratio >= TARGET else 'MISSES'} "
                f"≥ {TARGET})"
            )
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
