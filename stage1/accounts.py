"""The pod's own accounts, as data: its passwd and group files and its PAM configuration."""

from __future__ import annotations

from stage1.abi import PodSpec

# The pod's own PAM, for `machinectl shell` and `machinectl login` (container-shell@ and
# container-getty@ open a PAM session): only root on the host gets that far (machined asks polkit),
# so root is let in without a password and nobody else at all.
PAM = """\
auth     sufficient pam_rootok.so
auth     required   pam_deny.so
account  required   pam_permit.so
password required   pam_deny.so
session  required   pam_permit.so
"""


# systemd resolves User=/Group= through NSS in the pod's own root, where the apps' IDs must exist
def passwd(spec: PodSpec) -> str:
    users = {
        0: ("root", 0, "/root", "/bin/sh"),
        100: ("messagebus", 101, "/nonexistent", "/usr/sbin/nologin"),
    }
    for app in spec.apps:
        users.setdefault(app.user, (f"nspod-uid-{app.user}", app.group, "/", "/usr/sbin/nologin"))
    return "".join(
        f"{name}:x:{uid}:{gid}::{home}:{shell}\n" for uid, (name, gid, home, shell) in sorted(users.items())
    )


def group(spec: PodSpec) -> str:
    groups = {0: "root", 101: "messagebus"}
    for gid in sorted({g for app in spec.apps for g in (app.group, *app.supplementary_gids)}):
        groups.setdefault(gid, f"nspod-gid-{gid}")
    return "".join(f"{name}:x:{gid}:\n" for gid, name in sorted(groups.items()))
