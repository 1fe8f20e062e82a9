"""The warm pool: the keeper of booted spares (keeper), one run served in a spare (run) and the
client ``nspod run`` tries first (client, the standard library only)."""
