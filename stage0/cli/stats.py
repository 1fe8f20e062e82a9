"""``nspod stats [POD...]``: CPU, memory, PIDs, network and block I/O of running pods and of each
of their apps (stage0/api/stats.py reads them), refreshed every second until Ctrl-C, or once
(``--no-stream``); ``--format json``. CPU % is over the time since the last refresh, and on the
first one since the pod started (podman's rule), in percent of one core."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stage0.cli.output import add_format
from stage0.options import GlobalOptions

if TYPE_CHECKING:
    from stage0.api.stats import PodUsage, Usage

LEGEND = ["NAME", "APP", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS", "NET I/O", "BLOCK I/O"]
CLEAR = "\x1b[H\x1b[2J"  # a terminal's screen, redrawn in place as podman and top do


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = verbs.add_parser("stats", help="CPU, memory, PIDs, network and block I/O of running pods")
    stats.add_argument(
        "pods", nargs="*", metavar="POD", help="a pod's name or UUID (default: every running pod)"
    )
    stats.add_argument("--no-stream", action="store_true", help="print once, do not refresh every second")
    stats.add_argument("--no-legend", action="store_true", help="leave out the header line")
    add_format(stats)
    stats.set_defaults(handler=run_stats)


def run_stats(options: GlobalOptions, args: argparse.Namespace) -> int:
    try:
        return _stats(options, args)
    except KeyboardInterrupt:  # Ctrl-C is how a stream of stats ends: not a failure
        return 0


def _stats(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.stats import pod_usage, running
    from stage0.cli.format import table
    from stage0.host.cgroupfs import host_memory

    with open("/proc/meminfo") as file:
        memory = host_memory(file.read()) or 0
    before: dict[str, tuple[float, int]] = {}  # pod or app key → (monotonic seconds, CPU ns)
    while True:
        samples = [pod_usage(view) for view in running(options, args.pods)]
        records = [record(s, before, memory) for s in samples]
        if args.format == "json":
            text = json.dumps(records, indent=2 if args.no_stream else None) + "\n"
        else:
            cells = [cells_of(r) for pod in records for r in [pod, *pod["apps"]]]
            text = table(cells, None if args.no_legend else LEGEND)
        if not args.no_stream and args.format != "json" and sys.stdout.isatty():
            text = CLEAR + text
        sys.stdout.write(text)
        sys.stdout.flush()
        if args.no_stream:
            return 0
        time.sleep(1)


def record(sample: PodUsage, before: dict[str, tuple[float, int]], host_memory: int) -> dict[str, Any]:
    """One pod's JSON object (``nspod stats --format json``; its apps within), CPU % since the
    last record of the same pod or app in ``before`` (updated), else since the pod started."""
    from stage0.cli.podlist import named

    view = sample.view
    since = time.monotonic() - (time.time() - view.started) if view.started else sample.at
    pod = {
        "id": view.uuid,
        "name": named(view) or view.uuid[:8],
        **_numbers(sample.usage, _cpu(view.uuid, sample.at, sample.usage, before, since), host_memory),
        "net_rx_bytes": sample.net_rx,
        "net_tx_bytes": sample.net_tx,
    }
    apps = []
    for app in sample.apps:
        key = f"{view.uuid}/{app.name}"
        cpu = _cpu(key, sample.at, app.usage, before, since) if app.usage else None
        apps.append({"name": app.name, **(_numbers(app.usage, cpu, host_memory) if app.usage else {})})
    return {**pod, "apps": apps}


def _cpu(key: str, at: float, usage: Usage, before: dict[str, tuple[float, int]], since: float) -> float:
    from stage0.api.stats import cpu_percent

    start, used = before.get(key, (since, 0))
    before[key] = (at, usage.cpu_ns)
    return round(cpu_percent(used, usage.cpu_ns, at - start), 2)


def _numbers(usage: Usage, cpu: float | None, host_memory: int) -> dict[str, Any]:
    limit = usage.memory_limit or host_memory
    return {
        "cpu_percent": cpu,
        "cpu_ns": usage.cpu_ns,
        "memory_bytes": usage.memory_bytes,
        "memory_limit_bytes": usage.memory_limit,  # null: none of its own (the host's memory)
        "memory_percent": round(usage.memory_bytes / limit * 100, 2) if limit else None,
        "pids": usage.pids,
        "block_read_bytes": usage.block.read_bytes if usage.block else None,
        "block_write_bytes": usage.block.write_bytes if usage.block else None,
    }


def cells_of(row: Mapping[str, Any]) -> list[str]:
    """A pod's row (it has an ``id``) or an app's (``name`` alone, ``-`` when it does not run)."""
    from stage0.cli.format import human_size

    pod = "id" in row
    name, app = (row["name"], "-") if pod else ("", row["name"])
    if "cpu_ns" not in row:
        return [name, app, "-", "-", "-", "-", "-", "-"]

    def size(value: int | None) -> str:
        return "-" if value is None else human_size(value).replace(" ", "")

    limit = size(row["memory_limit_bytes"]) if row["memory_limit_bytes"] else "-"
    block = row["block_read_bytes"], row["block_write_bytes"]
    return [
        name,
        app,
        f"{row['cpu_percent']:.2f}%",
        f"{size(row['memory_bytes'])} / {limit}",
        "-" if row["memory_percent"] is None else f"{row['memory_percent']:.2f}%",
        str(row["pids"]),
        f"{size(row['net_rx_bytes'])} / {size(row['net_tx_bytes'])}" if pod else "-",
        "-" if block[0] is None else f"{size(block[0])} / {size(block[1])}",
    ]
