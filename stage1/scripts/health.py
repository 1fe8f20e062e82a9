#!/usr/bin/python3
# health CONFIG: run an app's health check once (health-APP.service, started by its timer), keep
# its state in /nspod/status/APP.health, log each change of state to the journal, and act on an
# app turned unhealthy (restart it, kill it, or only record it). CONFIG: stage1/health.py config.
# Docker's rules: "starting" until the first pass; a failure within the start period does not count
# while starting; RETRIES failures in a row make it "unhealthy"; a pass makes it "healthy".
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

STATE = "/nspod/status/{app}.health"
HOST_JOURNAL = "/run/nspod/host-journal"  # the host's journal socket (stage1/nspawn/service.py binds it)
POD_JOURNAL = "/run/systemd/journal/socket"
OUTPUT_MAX = 4096  # bytes of the check's output kept (docker keeps 4 KiB too)


def fresh(started: int) -> dict[str, Any]:
    return {"status": "starting", "failing_streak": 0, "app_started": started}


def judged(state: dict[str, Any], passed: bool, *, in_start: bool, retries: int) -> dict[str, Any]:
    """The state after one check (pure)."""
    state = dict(state)
    if passed:
        state.update(status="healthy", failing_streak=0)
    elif not (in_start and state["status"] == "starting"):
        state["failing_streak"] += 1
        if state["failing_streak"] >= retries:
            state["status"] = "unhealthy"
    return state


def app_started(app: str) -> tuple[bool, int]:
    """Whether the app runs, and when it entered that state (CLOCK_MONOTONIC, µs)."""
    shown = subprocess.run(
        [
            "/usr/bin/systemctl",
            "show",
            "--property=ActiveState,ActiveEnterTimestampMonotonic",
            f"{app}.service",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    values = dict(line.partition("=")[::2] for line in shown.splitlines())
    started = values.get("ActiveEnterTimestampMonotonic", "0")
    return values.get("ActiveState") == "active", int(started) if started.isdigit() else 0


def run_check(argv: list[str], timeout: float) -> tuple[int, str]:
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout + 5, check=False
        )
    except subprocess.TimeoutExpired:
        return 124, "the check timed out"
    output = (done.stdout + done.stderr)[-OUTPUT_MAX:].decode(errors="replace")
    return done.returncode, output


def log_change(config: dict[str, Any], state: dict[str, Any]) -> None:
    """One structured entry per change (NSPOD_EVENT=health_status), in the host journal (the pod's
    own if the host's is not bound in), and a line on the console, where the pod's log is."""
    app, status = config["app"], state["status"]
    message = f"health of {app}: {status} (failing streak {state['failing_streak']})"
    fields = {
        "MESSAGE": message,
        "PRIORITY": "4" if status == "unhealthy" else "6",
        "SYSLOG_IDENTIFIER": "nspod-health",
        "NSPOD_EVENT": "health_status",
        "NSPOD_POD": config["pod"],
        "NSPOD_POD_UUID": config["uuid"],
        "NSPOD_APP": app,
        "NSPOD_HEALTH": status,
        "NSPOD_HEALTH_FAILING_STREAK": str(state["failing_streak"]),
    }
    datagram = "".join(f"{k}={v}\n" for k, v in fields.items() if "\n" not in v).encode()
    for path in (HOST_JOURNAL, POD_JOURNAL):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(datagram, path)
            break
        except OSError:
            continue
    try:
        with open("/dev/console", "w") as console:
            console.write(f"nspod-health: {message}\n")
    except OSError:
        pass


def act(config: dict[str, Any]) -> None:
    """What an app turned unhealthy gets: restarted (its timer with it, PartOf=) or killed (its
    reaper then records 137, which ends a pod, not an app sandbox)."""
    unit = f"{config['app']}.service"
    if config["on_failure"] == "restart":
        subprocess.run(["/usr/bin/systemctl", "restart", "--no-block", unit], check=False)
    elif config["on_failure"] == "kill":
        subprocess.run(["/usr/bin/systemctl", "kill", "--signal=SIGKILL", unit], check=False)


def write_state(path: str, state: dict[str, Any]) -> None:
    with open(path + ".tmp", "w") as file:
        json.dump(state, file, sort_keys=True)
    os.replace(path + ".tmp", path)


def main(config_path: str) -> int:
    with open(config_path) as file:
        config: dict[str, Any] = json.load(file)
    path = STATE.format(app=config["app"])
    active, started = app_started(config["app"])
    if not active:
        return 0  # not running (ended, or between a stop and a start): nothing to check
    try:
        with open(path) as file:
            old: dict[str, Any] = json.load(file)
    except (OSError, ValueError):
        old = {}
    state = old if old.get("app_started") == started else fresh(started)
    if old and old.get("status") != state["status"]:
        log_change(config, state)  # back to starting: the app was restarted
    checked = time.time()
    code, output = run_check(config["argv"], float(config["timeout"]))
    in_start = (time.monotonic() * 1e6 - started) / 1e6 < float(config["start_period"])
    new = judged(state, code == 0, in_start=in_start, retries=int(config["retries"]))
    new.update(last_exit_code=code, last_output=output, last_check=checked)
    write_state(path, new)
    if new["status"] != state["status"]:
        log_change(config, new)
        if new["status"] == "unhealthy":
            act(config)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
