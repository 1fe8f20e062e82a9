"""``python -m stage0`` runs the nspod command line."""

import sys

from stage0.cli import main

sys.exit(main())
