"""The CRI v1 front end (``nspod cri``): a thin translation of Kubernetes' Container Runtime
Interface (server.py) over nspod's own operations (backend.py)."""

import os

# gRPC's fork handlers break sd-bus's connection to a pod's own bus (sd_bus_open_system_machine
# forks a child that enters the pod): with them, every call that reads an app's state from the
# pod's systemd failed "Could not open a bus" once the server ran. Set before grpc is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
