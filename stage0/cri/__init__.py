"""The CRI v1 front end: ``nspod cri`` (server.py) over nspod's own operations (backend.py)."""
