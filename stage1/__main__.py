"""``python -m stage1 VERB POD_DIR …``: the ABI's entry point (abi.ENTRYPOINTS; see ABI.md), as
pod@.service and third-party-compatible command lines call it: the nspawn flavor's."""

from __future__ import annotations

import sys

from stage1.nspawn.main import main

if __name__ == "__main__":
    sys.exit(main())
