"""The nspawn flavor: each pod a systemd-nspawn container with systemd as its PID 1 (the default)."""
