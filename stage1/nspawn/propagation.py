"""The CRI's bidirectional mounts, on the host's side: a host path's mount cloned into a running
app's own mount namespace as a peer of the host's (what the app then mounts there reaches the
host, and the host's mounts there reach the app). machined's BindMountMachine gives the pod a
slave copy, through nspawn's propagation directory, along which nothing travels back to the host;
so does systemd to the app's namespace. The pod's own copies stay slaves: the pod unmounts them
(and what is mounted below them) when it removes the app or stops, and an unmount of a child of
a peer would unmount the host's own mount there. The app's namespace is never unmounted, it ends
with the app's last process, which unmounts nothing anywhere else.

The adapter that runs stage1/scripts/mount_volumes.py on the host: entering another mount
namespace (setns) takes a process of a single thread, which a threaded server is not.
"""

from __future__ import annotations

import os
import subprocess
import sys

from stage1.abi import Error

MOUNT_VOLUMES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts", "mount_volumes.py")


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


def share_into_app(leader: int, main: int, pairs: list[tuple[str, str]]) -> None:
    """The app's shared volumes (host path, target) into its own mount namespace (``main``: its
    main process, as the pod numbers it), over the slave copies systemd's namespace made of them,
    once it started: what the app mounted there before lies under them."""
    share((leader, main), pairs)
