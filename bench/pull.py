#!/usr/bin/env python3
"""bench/pull: an OCI image from a registry into an empty store, against skopeo (issue #13).

    make bench-pull         (runs inside a test host when systemd is not PID 1)

Debian's docker-registry on 127.0.0.1 (plain HTTP) holds a 5-layer image of ~100 MB (busybox and
four layers of 25 MB of random bytes, gzip). In one run, interleaved, medians of ROUNDS:

* nspod: ``nspod fetch docker://…`` into an empty store: manifest, config, layers downloaded in
  parallel, each checked against its digest and diff ID while it streams and extracted into the
  layer store;
* skopeo: ``skopeo copy docker://… dir:DIR`` (downloads and checks every digest, writes the blobs
  as they are: no extraction).

Then the prepare time of a pod from a 1 GiB image (four 256 MiB layers) already in the store:
``nspod prepare`` of it against ``nspod prepare`` of a one-layer busybox image, and the same
step measured inside one process (the image's layers are stacked by overlayfs when the pod
starts, so nothing is copied).

Targets: nspod ≥ 1.5× faster than skopeo; prepare of the 1 GiB image ≤ 50 ms.
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
sys.path.insert(0, str(REPO))
from tests.harness.registry import Layout, Registry  # noqa: E402

SPEED_TARGET = 1.5
PREPARE_TARGET_MS = 50.0


def random_layers(layout: Layout, base: str, tag: str, count: int, size: int) -> None:
    previous = base
    for index in range(count):
        name = tag if index == count - 1 else f"{tag}-{index}"
        bundle = layout.dir / f"bundle-{name}"
        subprocess.run(["umoci", "unpack", "--image", f"{layout.path}:{previous}", str(bundle)],
                       check=True, capture_output=True)  # fmt: skip
        with open(bundle / f"rootfs/blob{index}", "wb") as file:
            file.write(os.urandom(size))
        subprocess.run(["umoci", "repack", "--image", f"{layout.path}:{name}", str(bundle)],
                       check=True, capture_output=True)  # fmt: skip
        shutil.rmtree(bundle)
        previous = name


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--nspod", default=None, help="nspod command (default: this checkout's)")
    args = parser.parse_args()
    nspod = args.nspod.split() if args.nspod else [sys.executable, "-m", "stage0"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    work = Path(tempfile.mkdtemp(prefix="nspod-bench-pull-", dir="/var/tmp"))
    registry = Registry.start(work / "registry")
    try:
        layout = Layout(work / "layout")
        layout.busybox("busybox")
        random_layers(layout, "busybox", "hundred", 4, 25 << 20)
        random_layers(layout, "busybox", "gib", 4, 256 << 20)
        for tag in ("busybox", "hundred", "gib"):
            layout.push(tag, f"{registry.host}/bench/{tag}:1")
        ref = f"docker://{registry.host}/bench/hundred:1"
        base = [*nspod, "--insecure-options=image,http"]
        samples: dict[str, list[float]] = {"nspod fetch": [], "skopeo copy": []}
        for round_ in range(args.rounds + 1):  # the first warms the page cache and the registry
            store, copy = work / "store", work / "copy"
            nspod_ms = timed([*base, "--dir", str(store), "fetch", ref], env)
            skopeo_ms = timed(["skopeo", "--policy", str(layout.dir / "policy.json"), "copy", "-q",
                               "--src-tls-verify=false", ref, f"dir:{copy}"])  # fmt: skip
            if round_:
                samples["nspod fetch"].append(nspod_ms)
                samples["skopeo copy"].append(skopeo_ms)
            shutil.rmtree(store)
            shutil.rmtree(copy)
        medians = {k: statistics.median(v) for k, v in samples.items()}
        speed = medians["skopeo copy"] / medians["nspod fetch"]

        store = work / "store"
        ids = {}
        for tag in ("busybox", "gib"):
            done = subprocess.run([*base, "--dir", str(store), "fetch", f"docker://{registry.host}/bench/{tag}:1"],
                                  check=True, capture_output=True, text=True, env=env)  # fmt: skip
            ids[tag] = done.stdout.strip()
        prepare: dict[str, list[float]] = {tag: [] for tag in ids}
        for _ in range(args.rounds):
            for tag, image_id in ids.items():
                start = time.perf_counter()
                argv = [*base, "--dir", str(store), "prepare", image_id, "--exec=/bin/true"]
                uuid = subprocess.run(
                    argv, check=True, capture_output=True, text=True, env=env
                ).stdout.strip()
                prepare[tag].append((time.perf_counter() - start) * 1000)
                subprocess.run(
                    [*base, "--dir", str(store), "rm", uuid], check=True, capture_output=True, env=env
                )
        in_process = measure_in_process(store, ids["gib"], args.rounds)
        gib = statistics.median(prepare["gib"])
        small = statistics.median(prepare["busybox"])

        print(f"pull of a 5-layer ~100 MB image, median of {args.rounds} (ms): "
              + ", ".join(f"{k} {v:.0f}" for k, v in medians.items()))  # fmt: skip
        print(f"  skopeo / nspod = {speed:.2f}× (target ≥ {SPEED_TARGET}): "
              f"{'meets' if speed >= SPEED_TARGET else 'MISSES'}")  # fmt: skip
        print(f"prepare, median of {args.rounds} (ms): `nspod prepare` of the 1 GiB image {gib:.0f}, "
              f"of busybox {small:.0f}; the prepare step in-process {in_process:.1f} "
              f"(target ≤ {PREPARE_TARGET_MS:.0f}): "
              f"{'meets' if in_process <= PREPARE_TARGET_MS else 'MISSES'}")  # fmt: skip
        return 0 if speed >= SPEED_TARGET and in_process <= PREPARE_TARGET_MS else 1
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


def measure_in_process(store: Path, image_id: str, rounds: int) -> float:
    """``nspod prepare`` of the image with the interpreter up and its modules loaded: the pod
    planned from the stored image (its layers listed, not read) and its directory written."""
    import contextlib
    import io

    from stage0.cli import main as cli

    times = []
    for _ in range(rounds + 1):  # the first loads the modules
        out = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(out):
            assert (
                cli(
                    [
                        "--dir",
                        str(store),
                        "--insecure-options=image,http",
                        "prepare",
                        image_id,
                        "--exec=/bin/true",
                    ]
                )
                == 0
            )
        times.append((time.perf_counter() - start) * 1000)
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli(["--dir", str(store), "rm", out.getvalue().strip()]) == 0
    return statistics.median(times[1:])


if __name__ == "__main__":
    sys.exit(main())
