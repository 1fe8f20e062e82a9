"""nspod stage1: turns a prepared pod into systemd objects (transient units, machined, journald).

stage1 never imports stage0; the two meet only in :mod:`stage1.abi`.
"""
