"""The ``nspod`` command's first step: a ``run`` or an ``app start`` goes to the warm pool's keeper
when there is one (stage0/pool/client.py, the standard library only), everything else — and a
command the keeper cannot take — to the command line proper (stage0/cli)."""

from __future__ import annotations

import os
import sys


# (-> None, not typing's NoReturn: typing and what it imports, re among them, cost a served
# command's start 3-8 ms here; stage0.cli.entry does not return)
def entry() -> None:
    if "run" in sys.argv[1:] or ("app" in sys.argv[1:] and "start" in sys.argv[1:]):
        from stage0.pool.client import try_pool

        code = try_pool(sys.argv[1:])
        if code is not None:
            os._exit(code)
    from stage0.cli import entry as cli

    cli()
