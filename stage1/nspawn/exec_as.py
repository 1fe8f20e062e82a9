"""``enter``'s podman-style overrides (``nspod exec -e -u -w``): the app as the entered command
runs it — another user, working directory or more environment — with the rest of its confinement
unchanged. Pure: an :class:`AppSpec` in, an :class:`AppSpec` out, which ``enter_argv`` then turns
into the same profile the app's own unit has."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from stage1.abi import AppSpec, Error, PodSpec
from stage1.app_unit import profile

RESERVED_IDS = "65535 and 4294967295 are no IDs to run as (-1 means 'unchanged' to setresuid(2))"


def valid_id(number: int) -> bool:
    """A UID or GID a command may run as: systemd refuses (uid_t)-1 and its 16-bit twin."""
    return 0 <= number < 0xFFFFFFFF and number != 0xFFFF


@dataclass(frozen=True, slots=True)
class Overrides:
    env: tuple[tuple[str, str], ...] = ()
    user: tuple[int, int] | None = None  # (uid, gid) in the pod
    workdir: str = ""  # absolute, in the app's root

    @classmethod
    def parse(cls, env: list[str], user: str | None, workdir: str | None) -> Overrides:
        """From stage1's ``enter --env K=V --user UID:GID --workdir DIR`` (ABI.md)."""
        pairs = []
        for item in env:
            key, sep, value = item.partition("=")
            if not sep or not key or "\0" in item:
                raise Error(f"bad environment assignment {item!r}", hint="give KEY=VALUE")
            pairs.append((key, value))
        ids = None
        if user is not None:
            uid, _, gid = user.partition(":")
            if not uid.isdigit() or not (gid or uid).isdigit():
                raise Error(f"bad user {user!r}", hint="stage1 takes UID[:GID], numbers")
            ids = (int(uid), int(gid or uid))
            if not all(valid_id(n) for n in ids):
                raise Error(f"bad user {user!r}", hint=RESERVED_IDS)
        if workdir is not None and not workdir.startswith("/"):
            raise Error(f"bad working directory {workdir!r}", hint="give an absolute path in the app")
        return cls(tuple(pairs), ids, workdir or "")


def overridden(app: AppSpec, overrides: Overrides) -> AppSpec:
    """The app with ``overrides`` applied. NoNewPrivileges stays what the app itself has: a command
    run as root (``-u 0``) in an app that is not root gets the app's bounding set, as podman's
    exec does, but never gains privileges through setuid files the app could not gain them by."""
    if overrides == Overrides():
        return app
    kept = ("NoNewPrivileges", "yes") in profile(app)
    changes: dict[str, object] = {"env": (*app.env, *overrides.env), "no_new_privileges": kept}
    if overrides.user is not None and overrides.user != (app.user, app.group):
        changes |= {"user": overrides.user[0], "group": overrides.user[1], "supplementary_gids": ()}
    if overrides.workdir:
        changes["working_directory"] = overrides.workdir
    return dataclasses.replace(app, **changes)  # type: ignore[arg-type]


def applied(spec: PodSpec, app: str, overrides: Overrides) -> tuple[PodSpec, AppSpec]:
    """The pod with its app ``app`` overridden, and that app."""
    chosen = overridden(spec.app(app), overrides)
    apps = tuple(chosen if a.name == app else a for a in spec.apps)
    return dataclasses.replace(spec, apps=apps), chosen


def account_lines(passwd: str, group: str, uid: int, gid: int) -> tuple[str, str]:
    """The pod's passwd and group texts with ``uid`` and ``gid`` in them (pure): its systemd
    resolves User= and Group= there and fails the command (217/USER) for an ID it lacks."""

    def has(text: str, number: int) -> bool:
        return any(line.split(":")[2:3] == [str(number)] for line in text.splitlines())

    if not has(passwd, uid):
        passwd += f"nspod-uid-{uid}:x:{uid}:{gid}::/:/usr/sbin/nologin\n"
    if not has(group, gid):
        group += f"nspod-gid-{gid}:x:{gid}:\n"
    return passwd, group


def admit(stage1_root: str, uid: int, gid: int) -> None:
    """Add the IDs to the running pod's accounts, where missing (as an added app's are). Read, then
    rewritten: concurrent ``exec -u`` take turns (an flock on the pod's /etc), or one would write
    back a passwd without the other's line and the other's command fail 217/USER."""
    import fcntl

    from stage1.tree import write_files
    from stage1.units import TreeFile

    lock = os.open(os.path.join(stage1_root, "etc"), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        texts = []
        for name in ("etc/passwd", "etc/group"):
            with open(os.path.join(stage1_root, name)) as file:
                texts.append(file.read())
        passwd, group = account_lines(texts[0], texts[1], uid, gid)
        if (passwd, group) != tuple(texts):
            write_files(stage1_root, {"etc/passwd": TreeFile(passwd), "etc/group": TreeFile(group)})
    finally:
        os.close(lock)  # the lock goes with it
