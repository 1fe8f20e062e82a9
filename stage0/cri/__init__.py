"""The CRI v1 front end (``nspod cri``): a thin translation of Kubernetes' Container Runtime
Interface over nspod's domain API."""
