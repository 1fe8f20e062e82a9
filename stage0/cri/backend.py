"""The one adapter between the CRI and nspod's operations: sandboxes and their apps.

Until the domain API (stage0/api) lands, this calls today's functions — the same ones the ``nspod
app`` verbs call — so switching is this one file. stage1 runs as a program here, never in the
server's process: it is a long-running threaded server, and stage1's entry points were written
for a process of their own (signals, stdout). Its error lines become the exception's message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from stage0.errors import Error
from stage0.options import GlobalOptions
from stage0.pods import Pod, PodNotFound, Pods, PodState
from stage0.requests import AppRequest, PodRequest
from stage1.abi import VolumeSpec

log = logging.getLogger("nspod.cri")
IN_PROCESS = ("add", "start", "stop", "rm")  # stage1's app verbs run in this process
STAGE1_TIMEOUT = 300.0  # seconds: a stuck stage1 must not hold a server thread for ever


class Stage1Failed(Error):
    hint = "see 'journalctl -u nspod-cri' and the pod's journal"


def _stage1(
    options: GlobalOptions, verb: str, pod_dir: str, *args: str, pass_fds: tuple[int, ...] = ()
) -> None:
    if verb == "app" and args[0] in IN_PROCESS and not options.stage1 and not pass_fds:
        return _in_process(pod_dir, args[0], args[-1])
    base = shlex.split(options.stage1) if options.stage1 else [sys.executable, "-m", "stage1"]
    argv = [*base, *(["--debug"] if options.debug else []), verb, pod_dir, *args]
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=STAGE1_TIMEOUT,
            pass_fds=pass_fds,
        )
    except subprocess.TimeoutExpired:
        raise Stage1Failed(f"stage1 {verb} on {os.path.basename(pod_dir)} did not finish in time") from None
    except OSError as error:
        raise Stage1Failed(f"cannot run stage1 {argv[0]!r}: {error.strerror}") from None
    if done.returncode != 0:
        lines = [
            line for line in done.stderr.splitlines() if line.strip() and not line.startswith("  hint:")
        ]
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise Stage1Failed(f"stage1 {verb} failed: {reason.removeprefix('nspod: ').removeprefix('error: ')}")


def _in_process(pod_dir: str, action: str, app: str) -> None:
    """stage1's app verbs in this process, as the pool keeper calls them for a pooled run: each is
    a function that raises, prints nothing and touches no signal. A stage1 program per call cost
    an interpreter and its imports, ~250 ms of each container's create, start, stop and removal
    here (bench/cri.py). A stage1 of the user's (``--stage1``) still runs as its program."""
    from stage0.executor import app_action

    try:
        app_action(pod_dir, action, app)
    except Error as error:
        raise Stage1Failed(f"stage1 app {action} failed: {error.message}") from None


def find_pod(options: GlobalOptions, uuid: str) -> Pod | None:
    try:
        return Pods(options.dir).find(uuid)
    except PodNotFound:
        return None
    except Error:
        return None


def run_sandbox(
    options: GlobalOptions, request: PodRequest, claim: Callable[[PodRequest], Pod | None] | None = None
) -> Pod:
    """Prepare and boot an empty app sandbox (``nspod app sandbox``); its pod once it runs.
    ``claim``: a booted spare for this request, if there is one (stage0/cri/warm.py)."""
    from stage0.cli.run import prepare_request, relaxing
    from stage0.sandbox import save_settings

    request = dataclasses.replace(relaxing(options, request), sandbox=True)
    if claim is not None and (spare := claim(request)) is not None:
        return spare
    prepared = prepare_request(options, request, to_run=True, pull_policy="never")
    save_settings(prepared.path, request)
    assert prepared.starting is not None
    try:
        os.set_inheritable(prepared.starting, True)
        _stage1(options, "run", prepared.path, "--detach", pass_fds=(prepared.starting,))
    finally:
        os.close(prepared.starting)
    return Pods(options.dir).find(os.path.basename(prepared.path))


def stop_sandbox(options: GlobalOptions, pod: Pod, *, force: bool = False) -> None:
    from stage0.mounts import detach_below

    if pod.state() is not PodState.RUNNING:
        return
    _stage1(options, "stop", pod.path, *(["--force"] if force else []))
    detach_below(pod.path)


def remove_sandbox(options: GlobalOptions, pod: Pod) -> None:
    if not os.path.isdir(pod.path):
        return
    if pod.state().alive:
        stop_sandbox(options, pod, force=True)
        pod = find_pod(options, pod.uuid) or pod
    if os.path.exists(pod.paths.started) or os.path.exists(pod.paths.unit):
        _stage1(options, "gc", pod.path)
    Pods(options.dir).remove(pod)


def add_app(
    options: GlobalOptions,
    pod: Pod,
    app: AppRequest,
    volumes: tuple[VolumeSpec, ...] = (),
    pull_policy: str = "never",
) -> str:
    """Plan the app and mount it into the running sandbox (``nspod app add``); its name. A failure
    leaves the pod's files as they were and nothing of the app mounted."""
    from stage0 import context
    from stage0.fetch.fetcher import PullPolicy
    from stage0.sandbox import changing, plan_app, remove_app_files, sandbox_spec, written

    with changing(pod):
        spec = sandbox_spec(pod)
        with context.open_store(options) as store:
            fetcher = context.fetcher(options, store, PullPolicy(pull_policy))
            name, files = plan_app(pod, spec, app, fetcher, volumes=volumes)
        try:
            with written(files):
                try:
                    _stage1(options, "app", pod.path, "add", "--app", name)
                except BaseException:
                    _undo_add(options, pod, name)
                    raise
        except BaseException:
            remove_app_files(pod, name)
            raise
    return name


def _undo_add(options: GlobalOptions, pod: Pod, name: str) -> None:
    """What a failed ``app add`` of stage1 may have left: the app's root and units in the pod
    (while the pod's files still name the app), and any mount of it on the host."""
    from stage0.mounts import detach_below
    from stage1.abi import APP_ROOT, PodPaths

    with contextlib.suppress(Error):
        _stage1(options, "app", pod.path, "rm", "--app", name)
    paths = PodPaths(pod.path)
    detach_below(os.path.join(paths.layers(name), "root"))
    detach_below(os.path.join(paths.stage1, APP_ROOT.format(app=name).lstrip("/")))


def start_app(options: GlobalOptions, pod: Pod, name: str) -> None:
    _stage1(options, "app", pod.path, "start", "--app", name)


def stop_app(options: GlobalOptions, pod: Pod, name: str, timeout: float) -> None:
    """Stop the app: SIGTERM, and SIGKILL once ``timeout`` seconds passed (0: at once)."""
    if timeout <= 0:
        kill_app(pod, name)
    _stage1(options, "app", pod.path, "stop", "--app", name)


def kill_app(pod: Pod, name: str) -> None:
    from stage1.systemd import Systemd

    machine = pod.machine()
    if not machine:
        return
    try:
        with Systemd(machine) as inside:
            inside.kill(f"{name}.service", 9)
    except Error:
        pass  # not running: nothing to kill


def remove_app(options: GlobalOptions, pod: Pod, name: str) -> None:
    from stage0.sandbox import changing, drop_app, remove_app_files, sandbox_spec, written

    with changing(pod):
        spec = sandbox_spec(pod)
        if name not in (a.name for a in spec.apps):
            return
        _stage1(options, "app", pod.path, "rm", "--app", name)
        with written(drop_app(pod, spec, name)):
            remove_app_files(pod, name)


def app_states(pod: Pod) -> dict[str, dict[str, Any]]:
    """The states of a running sandbox's apps by name (stage1/apps.py states); {} once it ended."""
    from stage1.apps import states

    if pod.state() is not PodState.RUNNING:
        return {}
    try:
        return {str(s["name"]): s for s in states(pod.path, None)}
    except Error as error:
        log.warning("cannot read the apps of pod %s: %s", pod.uuid, error)
        return {}


def app_images(pod: Pod) -> dict[str, str]:
    """The image ID each app runs, by app name."""
    from stage1.abi import PodSpec

    try:
        with open(pod.paths.spec) as file:
            spec = PodSpec.from_json(file.read())
    except (OSError, ValueError):
        return {}
    return dict(zip((a.name for a in spec.apps), pod.image_ids(), strict=False))


def pod_addresses(pod: Pod) -> list[str]:
    """The pod's IP addresses from its CNI results (``net.json``, stage1/ABI.md), in net order."""
    import json

    try:
        with open(pod.paths.net) as file:
            nets = json.load(file)
        return [ip["address"].split("/")[0] for net in nets for ip in net["result"].get("ips", [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def all_pods(options: GlobalOptions) -> dict[str, Pod]:
    return {pod.uuid: pod for pod in Pods(options.dir).all()}


def recorded_app_state(pod: Pod | None, name: str) -> dict[str, Any]:
    """An app's last state from the files its pod kept (the pod ended, or its systemd forgot the
    app): exited with its recorded code if it started, else created."""
    from stage1.abi import signal_name

    if pod is None:
        return {"name": name, "state": "exited", "exit_code": 255}  # its pod is gone: so is it
    status = os.path.join(pod.path, "status")
    started, code_text, exited = (
        _read(os.path.join(status, name + ".started")),
        _read(os.path.join(status, name)),
        None,
    )
    if code_text is not None:
        exited = os.path.getmtime(os.path.join(status, name))
    if started is None and code_text is None:
        return {"name": name, "state": "created"}
    code = int(float(code_text)) if code_text is not None else 255  # killed with its pod, unrecorded
    return {
        "name": name,
        "state": "exited",
        "exit_code": code,
        "signal": signal_name(_read(os.path.join(status, name + ".signal"))),
        "started": float(started) if started else None,
        "exited": exited,
    }


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return None
