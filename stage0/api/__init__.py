"""The domain API: the operations every front end calls (see stage0/api/pods.py)."""
