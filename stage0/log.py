"""Logging set-up for the CLI. Modules log through ``logging.getLogger(__name__)``; only ``main()``
calls :func:`log_setup`."""

from __future__ import annotations

import logging
import os
import sys


def log_setup(debug: bool) -> None:
    # SYSTEMD_LOG_LEVEL=debug is honoured like the systemd tools nspod sits beside.
    wants_debug = debug or os.environ.get("SYSTEMD_LOG_LEVEL", "") == "debug"
    logging.basicConfig(
        level=logging.DEBUG if wants_debug else logging.WARNING,
        format="nspod: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
