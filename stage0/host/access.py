"""Who may do what without root (rkt's model): members of group ``nspod`` read — ``list``, ``status``,
``cat-manifest``, ``logs``, ``image list``, ``image cat-manifest`` — and everything that changes a
pod or an image stays root's.

How the reading works: the data dir is root's, group nspod, mode 2750 (units/tmpfiles.d), so what
nspod makes in it inherits the group; the directories a reader needs are 0750 and the rest 0700;
others cannot enter at all. A reader writes nothing and takes no lock: a pod's liveness comes from
/proc/locks (stage0/images/store/locks.py), the image index is opened read-only
(stage0/images/store/index.py).
"""

from __future__ import annotations

import grp
import os

from stage0.errors import Error, ErrorKind

# sysusers.d also makes nspod-admin, for sites that grant more: nspod grants it nothing yet
GROUP = "nspod"
JOURNAL_GROUPS = ("systemd-journal", "adm", "wheel")  # whom journald lets read the system journal
READERS = ("list", "ps", "status", "cat-manifest", "logs", "image list", "image cat-manifest")
# verbs that touch no data dir: anyone may run them
ANYONE = ("version", "image build", "image validate", "pod validate", "pod list", "pod show")


class AccessError(Error):
    kind = ErrorKind.PERMISSION_DENIED
    hint = f"run it as root; members of group {GROUP} may read: nspod {', '.join(READERS)}"


def is_reader() -> bool:
    """Whether this process reads the data dir as a member of the group (it is not root)."""
    return os.geteuid() != 0


def _in_group(names: tuple[str, ...]) -> bool:
    mine = set(os.getgroups()) | {os.getegid()}
    for name in names:
        try:
            if grp.getgrnam(name).gr_gid in mine:
                return True
        except KeyError:
            continue
    return False


def _writable(data_dir: str) -> bool:
    """Whether this user can change ``data_dir`` (or make it): a store of one's own needs no root."""
    where = data_dir
    while not os.path.exists(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    return os.access(where, os.W_OK | os.X_OK)


def check(verb: str, data_dir: str) -> None:
    """Refuse, with the group to join or the need for root, what this user cannot do."""
    if not is_reader() or verb in ANYONE:
        return
    if verb in READERS:
        if os.path.exists(data_dir) and not os.access(data_dir, os.R_OK | os.X_OK):
            raise AccessError(
                f"cannot read {data_dir}: permission denied (not a member of group {GROUP})",
                hint=f"reading pods and images without root needs group {GROUP}: "
                f"usermod -aG {GROUP} {_user()}, then log in again",
            )
        if verb == "logs" and not _in_group(JOURNAL_GROUPS):
            raise AccessError(
                "reading a pod's journal needs root or group systemd-journal",
                hint=f"usermod -aG systemd-journal {_user()}, then log in again",
            )
        return
    if not _writable(data_dir):
        raise AccessError(f"'nspod {verb}' needs root ({data_dir} is root's)")


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return "USER"
