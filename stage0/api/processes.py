"""A running pod's apps as processes, for ``top``, ``kill``, ``cp`` and ``exec -u NAME``: each
app's control group under the pod's host unit (``<app>.service``, the pod's systemd names it so;
a hostPID sandbox's app is a host unit of its own), the processes in it, and their ``/proc``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from stage0.cri.stats import pod_group
from stage0.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from stage0.host import cgroups
from stage0.host.executor import fly_unit
from stage0.pods.dirs import Pod, PodState
from stage1.abi import PodSpec


def spec_of(pod: Pod) -> PodSpec:
    with open(pod.paths.spec) as file:
        return PodSpec.from_json(file.read())


def chosen_apps(pod: Pod, app: str | None) -> tuple[str, ...]:
    """``--app NAME``'s app (NotFound when the pod has none of that name), or every app."""
    names = tuple(a.name for a in spec_of(pod).apps)
    if app is None:
        return names
    if app not in names:
        raise NotFoundError(f"pod {pod.uuid} has no app {app!r}", hint=f"its apps: {', '.join(names)}")
    return (app,)


def running(pod: Pod) -> None:
    if pod.state() is not PodState.RUNNING:
        raise FailedPreconditionError(
            f"pod {pod.uuid} is {pod.state()}", hint="only a running pod's apps have processes"
        )


def app_group(pod: Pod, app: str, root: str = cgroups.ROOT) -> str | None:
    """The app's control group (relative to the cgroup tree), None when it has none (not started,
    or ended)."""
    group = pod_group(pod.paths, root)
    if group is None:
        return None
    found = cgroups.find_group(root, f"{app}.service", below=group)
    if found is None and spec_of(pod).host_pid:  # a unit of the host's (stage1/fly)
        found = cgroups.find_group(root, fly_unit(pod.uuid, app), below="/system.slice", depth=0)
    return found


def app_pids(pod: Pod, app: str, root: str = cgroups.ROOT) -> list[int]:
    group = app_group(pod, app, root)
    return sorted(set(cgroups.pids(root, group))) if group else []


@dataclass(frozen=True, slots=True)
class Process:
    pid: int  # as the host numbers it
    pod_pid: int  # as the pod numbers it (the innermost PID namespace's)
    uid: int  # the effective one, in the pod (the host's minus a --private-users shift)
    host_uid: int
    host_gid: int
    cpu_ticks: int  # user + system, clock ticks
    start_ticks: int  # after boot
    command: str


def parse_process(pid: int, stat: str, status: str, cmdline: bytes, shift: int = 0) -> Process:
    """One process from its /proc files' text (pure; ``shift``: the pod's first host UID)."""
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is the state (stat's 3rd field): utime, stime are the 14th and 15th, starttime 22nd
    lines = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    uids, gids = lines.get("Uid", "0 0").split(), lines.get("Gid", "0 0").split()
    nspid = lines.get("NSpid", str(pid)).split()
    words = [w.decode(errors="replace") for w in cmdline.split(b"\0") if w]
    return Process(
        pid=pid,
        pod_pid=int(nspid[-1]),
        uid=int(uids[1]) - shift,
        host_uid=int(uids[1]),
        host_gid=int(gids[1]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
        start_ticks=int(fields[19]),
        command=" ".join(words) or f"[{comm}]",
    )


def read_process(pid: int, shift: int = 0, proc: str = "/proc") -> Process | None:
    """None for a process that ended meanwhile."""
    base = os.path.join(proc, str(pid))
    try:
        with open(os.path.join(base, "stat")) as stat, open(os.path.join(base, "status")) as status:
            stat_text, status_text = stat.read(), status.read()
        with open(os.path.join(base, "cmdline"), "rb") as cmdline:
            words = cmdline.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return parse_process(pid, stat_text, status_text, words, shift)


def main_process(pod: Pod, app: str) -> Process:
    """The app's oldest process (its main one, or nspod-pidns above it: either runs in the app's
    root); FailedPrecondition when the app has none running."""
    running(pod)
    found = [p for pid in app_pids(pod, app) if (p := read_process(pid)) is not None]
    if not found:
        raise FailedPreconditionError(
            f"app {app} of pod {pod.uuid} is not running", hint=f"see 'nspod status {pod.uuid[:8]}'"
        )
    return min(found, key=lambda p: (p.start_ticks, p.pid))


def app_root(pod: Pod, app: str) -> int:
    """A directory descriptor of the app's root: its oldest process's ``/proc/PID/root``, that
    process held by a pidfd meanwhile. A PID read from the app's group may be reused by then (the
    app's process ended): the process is checked in the group once held, and still alive once its
    root is open, so the root is never another process's (a host one's: the host's root)."""
    import signal

    from stage0.host.inroot import open_root

    for _ in range(3):
        pid = main_process(pod, app).pid
        try:
            held = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            if pid not in app_pids(pod, app):
                continue
            rootfd = open_root(pid)
            try:
                signal.pidfd_send_signal(held, 0)  # still that process: the root opened was its
            except ProcessLookupError:
                os.close(rootfd)
                continue
            return rootfd
        except (FileNotFoundError, ProcessLookupError):
            continue
        finally:
            os.close(held)
    raise FailedPreconditionError(
        f"app {app} of pod {pod.uuid} ended while its root was sought", hint="is it restarting? try again"
    )


def check_workdir(pod: Pod, app: str, path: str) -> None:
    """``exec -w``'s directory, resolved now as the app itself would resolve it. systemd changes to
    WorkingDirectory= before it drops the command's privileges: a magic link of /proc on the way
    (/proc/1/root: the pod's own tree, which the app cannot enter itself) would lead the command
    out of the app's root. Such a path is refused here; a link the app swaps in after this check
    is not seen (the chdir belongs after the drop: a helper in the app's root would do it)."""
    from stage0.host.inroot import open_in_root

    rootfd = app_root(pod, app)
    try:
        os.close(open_in_root(rootfd, path, os.O_PATH | os.O_DIRECTORY))
    except OSError as error:
        raise FailedPreconditionError(
            f"{path}: no directory of app {app} ({error.strerror})",
            hint="give a directory of the app's own, reached without /proc's links",
        ) from None
    finally:
        os.close(rootfd)


def processes(pod: Pod, apps: tuple[str, ...]) -> list[tuple[str, Process]]:
    """Each app's processes now, app by app, oldest first."""
    running(pod)
    shift = spec_of(pod).private_users or 0
    rows = []
    for app in apps:
        found = [p for pid in app_pids(pod, app) if (p := read_process(pid, shift)) is not None]
        rows += [(app, p) for p in sorted(found, key=lambda p: (p.start_ticks, p.pid))]
    return rows


def one_app(pod: Pod, app: str | None) -> str:
    """``--app NAME``'s app, or the pod's only one (UsageError when it has several)."""
    from stage0.errors import UsageError

    names = chosen_apps(pod, app)
    if len(names) != 1:
        raise UsageError(f"pod {pod.uuid} has several apps", hint=f"choose one: {', '.join(names)}")
    return names[0]


def parse_ids(text: str) -> dict[str, tuple[int, int]]:
    """A passwd (name → (uid, gid)) or group (name → (gid, gid)) file's entries (pure)."""
    found: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit():
            number = int(fields[2])
            found.setdefault(fields[0], (number, int(fields[3]) if fields[3].isdigit() else number))
    return found


def app_accounts(pod: Pod, app: str, file: str) -> dict[str, tuple[int, int]]:
    """The running app's own /etc/passwd or /etc/group (``file``), read inside its root."""
    from stage0.host.inroot import read_in_root

    rootfd = app_root(pod, app)
    try:
        data = read_in_root(rootfd, f"/etc/{file}")
    finally:
        os.close(rootfd)
    return parse_ids((data or b"").decode(errors="replace"))


def resolve_user(pod: Pod, app: str, text: str) -> tuple[int, int]:
    """``exec -u``'s USER[:GROUP], each a number or a name of the app's own /etc/passwd and
    /etc/group (NotFound for a name the app has not)."""
    user, _, group = text.partition(":")
    if not user:
        raise InvalidArgumentError(f"bad user {text!r}", hint="give USER[:GROUP], names or numbers")
    passwd = app_accounts(pod, app, "passwd") if not (user.isdigit() and group) else {}
    if not user.isdigit() and user not in passwd:
        raise NotFoundError(
            f"app {app} has no user {user!r}", hint="give a number, or a user of its /etc/passwd"
        )
    # a number the app's passwd does not list is root's group's, as podman has it
    by_uid = {uid: gid for uid, gid in passwd.values()}
    uid, gid = (int(user), by_uid.get(int(user), 0)) if user.isdigit() else passwd[user]
    if group:
        groups = {} if group.isdigit() else app_accounts(pod, app, "group")
        if not group.isdigit() and group not in groups:
            raise NotFoundError(
                f"app {app} has no group {group!r}", hint="give a number, or a group of its /etc/group"
            )
        gid = int(group) if group.isdigit() else groups[group][0]
    # systemd refuses (uid_t)-1 ("unchanged" to setresuid(2)) and its 16-bit twin (stage1 too)
    if not all(0 <= n < 0xFFFFFFFF and n != 0xFFFF for n in (uid, gid)):
        raise InvalidArgumentError(
            f"bad user {text!r}: {uid}:{gid} are no IDs to run as", hint="65535 and 4294967295 are reserved"
        )
    return uid, gid
