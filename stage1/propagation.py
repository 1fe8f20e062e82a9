"""The CRI's bidirectional mounts, on the host's side: a host path's mount cloned into a running
pod as a peer of the host's (what the app then mounts there reaches the host, and the host's
mounts there reach the app). machined's BindMountMachine gives a slave copy instead, through
nspawn's propagation directory, along which nothing travels back to the host.

The adapter that runs stage1/scripts/mount_volumes.py on the host: entering another mount
namespace (setns) takes a process of a single thread, which a threaded server is not.
"""

from __future__ import annotations

import os
import subprocess
import sys

from stage1.abi import Error

MOUNT_VOLUMES = os.path.join(os.path.dirname(__file__), "scripts", "mount_volumes.py")


def share(pids: tuple[int, ...], pairs: list[tuple[str, str]]) -> None:
    """Each host mount at a source (and what is mounted below it) onto its target inside the root
    of the last of ``pids``, in its mount namespace, entered through each of ``pids`` in turn: the
    pod's leader, then (as the pod numbers it) an app's main process."""
    words = [w for pair in pairs for w in pair]
    done = subprocess.run(
        [sys.executable, MOUNT_VOLUMES, "--share", ",".join(map(str, pids)), *words],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        raise Error(
            f"cannot share {', '.join(s for s, _ in pairs)} with the pod: {done.stderr.strip()}",
            hint="a bidirectional mount's host path must be a directory on a shared mount",
        )


def share_into_pod(leader: int, pod_root: str, source: str, target: str) -> None:
    """The host's ``source`` at ``target`` in the pod whose leader is ``leader`` and whose tree is
    ``pod_root`` on the host: a directory of the pod's own tree, which no app reaches
    (stage1/volumes.py staged); the app's volumes unit binds it on into the app's root, a peer
    too, before the app starts."""
    os.makedirs(pod_root + target, exist_ok=True)
    share((leader,), [(source, target)])


def share_into_app(leader: int, main: int, pairs: list[tuple[str, str]]) -> None:
    """The app's shared volumes into its own mount namespace (``main``: its main process, as the
    pod numbers it), over the slave copies systemd's namespace made of them, once it started:
    what the app mounted there before lies under them."""
    share((leader, main), pairs)
