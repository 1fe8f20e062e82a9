#!/usr/bin/env python3
"""bench/net: what a pod's own network costs (issue #12).

    make bench-net          (runs inside a test host when systemd is not PID 1)

In one run:

* start: ``nspod run IMAGE --exec=/bin/true`` on the ``default`` net and with ``--net=none``
  against ``--net=host``, interleaved (order rotated, gc after each run), after warm-ups; the
  median of the rounds' differences is what the namespace, the CNI plugin, masquerading and the
  teardown add to a pod's life (none: the namespace and the teardown's ExecStopPost= alone);
* back to back: blocks of BLOCK runs in a row of each, alternating; the median difference of the
  blocks' mean run time also counts what a pod leaves the kernel to do after it has ended (a
  namespace's removal goes on in the background, in the next pod's time);
* throughput pod → host: the same sender (busybox ``dd | nc``, SIZE bytes) in a pod on the default
  net to the host's end of its link, against a veth pair made by hand (``ip netns add`` and ``ip
  link add … type veth``, no plugin, no NAT) and against the host's loopback; the receiver, on the
  host, times from the first byte to the last. Best of ROUNDS each, interleaved.

Targets: start adds ≤ 60 ms, by both measures; throughput ≥ 0.8× the hand-made veth pair.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from start import build_image, interleaved, setup, timed

START_TARGET_MS = 60.0
THROUGHPUT_TARGET = 0.8
SIZE = 1 << 30
ROUNDS = 3
BLOCK, BLOCKS = 5, 8
VETH_NS, VETH_HOST, VETH_POD = "nspod-bench-veth", "10.99.0.1", "10.99.0.2"


class Receiver:
    """A TCP server on the host that times each connection from its first byte to its end."""

    def __init__(self) -> None:
        self.server = socket.create_server(("0.0.0.0", 0))
        self.port = self.server.getsockname()[1]
        self.results: list[tuple[int, float]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with client:
                total, first = 0, 0.0
                buffer = bytearray(1 << 20)
                while n := client.recv_into(buffer):
                    if not total:
                        first = time.perf_counter()
                    total += n
                self.results.append((total, time.perf_counter() - first))

    def measure(self, argv: list[str], env: dict[str, str]) -> float:
        """MiB/s of what ``argv`` sent."""
        before = len(self.results)
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while len(self.results) == before:
            if time.monotonic() > deadline:
                raise SystemExit(f"{argv[:3]}… sent nothing")
            time.sleep(0.01)
        total, seconds = self.results[-1]
        if total != SIZE:
            raise SystemExit(f"{argv[:3]}… sent {total} bytes, not {SIZE}")
        return total / seconds / (1 << 20)


def sender(host: str, port: int) -> str:
    return f"dd if=/dev/zero bs=65536 count={SIZE // 65536} 2>/dev/null | nc {host} {port}"


def hand_veth() -> None:
    """A namespace and a veth pair made by hand: what a pod's link is, without CNI or NAT."""
    subprocess.run(["ip", "netns", "add", VETH_NS], check=True)
    commands = [
        ["ip", "link", "add", "nspodbench0", "type", "veth", "peer", "name", "eth0", "netns", VETH_NS],
        ["ip", "addr", "add", f"{VETH_HOST}/30", "dev", "nspodbench0"],
        ["ip", "link", "set", "nspodbench0", "up"],
        ["ip", "-n", VETH_NS, "addr", "add", f"{VETH_POD}/30", "dev", "eth0"],
        ["ip", "-n", VETH_NS, "link", "set", "eth0", "up"],
        ["ip", "-n", VETH_NS, "link", "set", "lo", "up"],
    ]
    for argv in commands:
        subprocess.run(argv, check=True)


def back_to_back(base: list[str], image_id: str, env: dict[str, str]) -> float:
    """The median over blocks of (mean run on default − mean run on host), BLOCK runs in a row."""
    means: dict[str, list[float]] = {"host": [], "default": []}
    for block in range(BLOCKS + 2):  # the first two warm up
        for net in ("host", "default") if block % 2 else ("default", "host"):
            runs = [timed([*base, "run", f"--net={net}", image_id], env) for _ in range(BLOCK)]
            if block >= 2:
                means[net].append(statistics.mean(runs))
            subprocess.run(
                [*base, "gc", "--grace-period=0s"], env=env, check=True, stdout=subprocess.DEVNULL
            )
    return statistics.median(d - h for d, h in zip(means["default"], means["host"], strict=True))


def main() -> int:
    args, work, env, base = setup(__doc__, "net", 40)
    hand_veth()
    try:
        aci = build_image(work)
        for applet in ("dd", "nc"):
            (work / "layout/rootfs/bin" / applet).symlink_to("busybox")
        subprocess.run([*base, "image", "build", "--overwrite", str(work / "layout"), str(aci)], check=True,
                       env=env, stdout=subprocess.DEVNULL)  # fmt: skip
        image = subprocess.run(
            [*base, "fetch", str(aci)], capture_output=True, text=True, check=True, env=env
        )
        image_id = image.stdout.strip()

        runs = interleaved(
            {
                "--net=host": [*base, "run", "--net=host", image_id],
                "--net=none": [*base, "run", "--net=none", image_id],
                "--net=default": [*base, "run", "--net=default", image_id],
            },
            args.runs,
            env,
            warmups=2,
            between=[*base, "gc", "--grace-period=0s"],
            each=True,  # a namespace's removal goes on in the kernel after its pod: not the next one's cost
        )
        start = {name: statistics.median(samples) for name, samples in runs.items()}
        # the same round's runs, paired: the neighbours' load moves them alike
        differences = {
            name: [d - h for d, h in zip(runs[name], runs["--net=host"], strict=True)]
            for name in ("--net=none", "--net=default")
        }
        added = statistics.median(differences["--net=default"])
        quartiles = {name: statistics.quantiles(d, n=4) for name, d in differences.items()}

        in_a_row = back_to_back(base, image_id, env)

        receiver = Receiver()
        port = receiver.port
        senders = {
            "pod on default": [*base, "run", "--net=default", image_id, "--exec=/bin/sh", "--", "-c",
                               sender("172.16.28.1", port)],
            "veth by hand": ["ip", "netns", "exec", VETH_NS, "sh", "-c", sender(VETH_HOST, port).replace(
                "nc ", "busybox nc ").replace("dd ", "busybox dd ")],
            "host loopback": ["sh", "-c", sender("127.0.0.1", port).replace("nc ", "busybox nc ").replace(
                "dd ", "busybox dd ")],
        }  # fmt: skip
        best: dict[str, float] = {name: 0.0 for name in senders}
        for _ in range(ROUNDS):
            for name, argv in senders.items():
                best[name] = max(best[name], receiver.measure(argv, env))
        ratio = best["pod on default"] / best["veth by hand"]

        print(f"start, median of {args.runs} (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in start.items()))
        print(f"  the default net adds {added:.1f} ms, median of the rounds' differences "
              f"(quartiles {quartiles['--net=default'][0]:.1f}–{quartiles['--net=default'][2]:.1f}; "
              f"target ≤ {START_TARGET_MS:.0f}): "
              f"{'meets' if added <= START_TARGET_MS else 'MISSES'}")  # fmt: skip
        print(f"  back to back, {BLOCKS} blocks of {BLOCK} in a row each: the default net adds "
              f"{in_a_row:.1f} ms a pod (target ≤ {START_TARGET_MS:.0f}): "
              f"{'meets' if in_a_row <= START_TARGET_MS else 'MISSES'}")  # fmt: skip
        print(f"  of which a namespace alone (--net=none): "
              f"{statistics.median(differences['--net=none']):.1f} ms "
              f"(quartiles {quartiles['--net=none'][0]:.1f}–{quartiles['--net=none'][2]:.1f})")  # fmt: skip
        print(f"throughput pod → host, best of {ROUNDS} of {SIZE >> 20} MiB (MiB/s): "
              + ", ".join(f"{k} {v:.0f}" for k, v in best.items()))  # fmt: skip
        print(f"  pod / veth by hand = {ratio:.2f} (target ≥ {THROUGHPUT_TARGET}): "
              f"{'meets' if ratio >= THROUGHPUT_TARGET else 'MISSES'}; "
              f"pod / loopback = {best['pod on default'] / best['host loopback']:.2f}")  # fmt: skip
        return 0 if max(added, in_a_row) <= START_TARGET_MS and ratio >= THROUGHPUT_TARGET else 1
    finally:
        subprocess.run(["ip", "netns", "delete", VETH_NS], check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)
        os.sync()


if __name__ == "__main__":
    sys.exit(main())
