"""Pods: what a user asks for (requests, podfile, manifest_input), planning it purely (planner, dns,
network, userns), preparing it (prepare), pods on disk (dirs), app sandboxes (sandbox) and the
appc metadata service (mds)."""
