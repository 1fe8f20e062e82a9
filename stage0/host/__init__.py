"""Adapters to the host: running programs (runner), running stage1 (executor), systemd-machined over
D-Bus (machined), sd_notify (notify), leftover mounts (mounts) and who may do what (access)."""
