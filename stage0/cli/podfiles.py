"""``nspod pod …``: pods declared in files and run by ``systemctl start pod@NAME``.

``pod exec NAME`` is what ``pod@.service`` runs: it prepares the pod from its file and hands over to
stage1, which execs systemd-nspawn in place, so ``pod@NAME.service`` itself is the pod's unit.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from stage0.host.atomic import write_atomic
from stage0.host.stage1client import Stage1Client
from stage0.options import GlobalOptions
from stage1.abi import own_unit

if TYPE_CHECKING:
    from stage0.pods.podfile import PodFile
    from stage0.pods.requests import PodRequest

DROPIN_ROOT = "/etc/systemd/system"


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pod = verbs.add_parser("pod", help="pods declared in files, for systemctl start pod@NAME")
    sub = pod.add_subparsers(dest="pod_verb", metavar="VERB", required=True)
    validate = sub.add_parser("validate", help="check pod files")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(handler=run_validate)
    listing = sub.add_parser("list", help="list the pod files nspod finds")
    listing.set_defaults(handler=run_list)
    show = sub.add_parser("show", help="show a pod file as nspod reads it, and its unit drop-in")
    show.add_argument("name", metavar="NAME")
    show.set_defaults(handler=run_show)
    install = sub.add_parser(
        "install", help="write pod@NAME.service's drop-in from the pod file's [service]"
    )
    install.add_argument("name", metavar="NAME")
    install.set_defaults(handler=run_install)
    uninstall = sub.add_parser("uninstall", help="remove pod@NAME.service's drop-in")
    uninstall.add_argument("name", metavar="NAME")
    uninstall.set_defaults(handler=run_uninstall)
    execute = sub.add_parser("exec", help="run pod NAME in place (what pod@NAME.service runs)")
    execute.add_argument("name", metavar="NAME")
    execute.set_defaults(handler=run_exec)
    halt = sub.add_parser("halt", help="shut pod NAME down in order (what pod@NAME.service's ExecStop runs)")
    halt.add_argument("name", metavar="NAME")
    halt.set_defaults(handler=run_halt)


def _dirs(options: GlobalOptions) -> list[str]:
    from stage0.pods.podfile import search_path

    return search_path(options.local_config, options.system_config)


def run_validate(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.pods.podfile import PodFileError, parse

    for path in args.files:
        try:
            with open(path) as file:
                text = file.read()
        except OSError as error:
            raise PodFileError(f"cannot read {path}: {error.strerror}") from None
        name = os.path.basename(path).removesuffix(".toml")
        pod = parse(text, path, name)
        print(f"{path}: valid pod file ({len(pod.request.apps)} app(s))")
    return 0


def run_list(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.cli.format import table

    rows, seen = [], set()
    for directory in _dirs(options):
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            if name.endswith(".toml") and name[:-5] not in seen:
                seen.add(name[:-5])
                rows.append([name[:-5], os.path.join(directory, name)])
    sys.stdout.write(table(rows, ["NAME", "FILE"]))
    return 0


def run_show(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.pods.podfile import drop_in, load

    pod = load(args.name, _dirs(options))
    print(f"# {pod.path}\nmachine: {pod.name}\nhostname: {pod.request.hostname}")
    for app in pod.request.apps:
        print(
            f"app: {app.name or '(from image)'} image={app.image}"
            + (f" exec={app.exec}" if app.exec else "")
        )
    print(f"\n# {DROPIN_ROOT}/pod@{pod.name}.service.d/50-nspod.conf\n{drop_in(pod)}", end="")
    return 0


def _daemon_reload() -> None:
    from stage0.host.executor import daemon_reload

    daemon_reload()


def run_install(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.pods.podfile import drop_in, load

    pod = load(args.name, _dirs(options))
    directory = os.path.join(DROPIN_ROOT, f"pod@{pod.name}.service.d")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "50-nspod.conf")
    write_atomic(path, drop_in(pod))
    _daemon_reload()
    print(path)
    return 0


def run_uninstall(options: GlobalOptions, args: argparse.Namespace) -> int:
    path = os.path.join(DROPIN_ROOT, f"pod@{args.name}.service.d", "50-nspod.conf")
    if os.path.exists(path):
        os.unlink(path)
        _daemon_reload()
        print(f"removed {path}")
    return 0


def run_exec(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.pods import prepare, remove_dir
    from stage0.cli.output import stderr_report
    from stage0.host.notify import keep_alive, notify
    from stage0.pods.dirs import Pods, PodState
    from stage0.pods.podfile import load

    pod = load(args.name, _dirs(options))
    if warning := uninstalled_service(pod):
        print(f"nspod: warning: {warning}", file=sys.stderr)
    # each start of pod@NAME makes a new pod: the previous one's record goes, as with run --rm
    unit = own_unit()
    for previous in Pods(options.dir).of_unit(unit):
        if previous.state() in (PodState.EXITED, PodState.ABORTED_PREPARE):
            remove_dir(options, previous)
    # a stop while we prepare kills us (SIGTERM's own action: a clean stop for systemd); the
    # half-made pod, marked with this unit from its first moment, goes at the next start or gc
    # fetching images may outlast the unit's start timeout: keep pushing it out while we prepare
    with keep_alive(f"preparing pod {pod.name} (fetching images)"):
        prepared = prepare(options, _pinned(options, pod), to_run=True, unit=unit, report=stderr_report())
    notify(f"STATUS=starting pod {pod.name}")
    return prepared.start(options, verb="exec")


def _pinned(options: GlobalOptions, pod: PodFile) -> PodRequest:
    """The request with the images 'nspod auto-update' chose (or rolled back to), by ID."""
    if not pod.auto_update:
        return pod.request
    from stage0.pods.autoupdate import load_record, pinned

    return pinned(pod.request, load_record(options.dir, pod.name))


def uninstalled_service(pod: PodFile) -> str | None:
    """What is wrong when the unit's drop-in is not the pod file's [service] table (a pod file
    copied in, or edited, without 'nspod pod install'): systemd read the unit before nspod runs,
    so only an install and a restart apply it."""
    from stage0.pods.podfile import drop_in

    try:
        with open(os.path.join(DROPIN_ROOT, f"pod@{pod.name}.service.d", "50-nspod.conf")) as file:
            installed = file.read()
    except FileNotFoundError:
        installed = ""
    if installed == (drop_in(pod) if pod.service else ""):
        return None
    return (
        f"the [service] table of {pod.path} is not what pod@{pod.name}.service runs with;"
        f" run 'nspod pod install {pod.name}' and restart it"
    )


def run_halt(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.pods.dirs import Pods, PodState

    unit = own_unit()
    for pod in Pods(options.dir).of_unit(unit):
        if pod.state() is PodState.RUNNING:
            return Stage1Client.of(options, pod.path).halt()
    return 0
