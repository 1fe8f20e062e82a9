"""The namespaces an app shares beyond its pod's own: the host's IPC namespace (the CRI's ipc NODE).

nspawn always gives the pod an IPC namespace of its own. For a pod that asks for the host's, nspawn
binds its own (the host's) IPC namespace file into the pod's tree (``--bind-ro`` of
/proc/self/ns/ipc: nspawn sets up its mounts before it makes the pod's namespaces), and every app
unit and every command entered into an app joins it with IPCNamespacePath=. No other pod has that
file, and no app can reach the pod's tree (each is in a root of its own).
"""

from __future__ import annotations

from stage1.escape import nspawn_bind

HOST_IPC = "/nspod/host-ipc"  # in the pod's tree: the host's IPC namespace, in a host-IPC pod alone
OWN_IPC = "/proc/self/ns/ipc"  # nspawn's own, the host's, when nspawn mounts the pod's binds


def host_ipc_argv(host_ipc: bool) -> list[str]:
    """nspawn's options for the pod's namespaces shared with the host."""
    return [nspawn_bind("--bind-ro", OWN_IPC, HOST_IPC)] if host_ipc else []


def ipc_settings(host_ipc: bool) -> list[tuple[str, str]]:
    """The app's IPC namespace as unit settings: the pod's (none), or the host's. systemd 252 makes
    the runtime that carries a namespace to join only for PrivateIPC= (IPCNamespacePath= alone is
    silently ignored); with both, the path is joined, no namespace made."""
    return [("PrivateIPC", "yes"), ("IPCNamespacePath", HOST_IPC)] if host_ipc else []
