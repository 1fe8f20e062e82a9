"""nspod stage0: the command line, image tooling and pod preparation."""

__version__ = "0.1.0"
APPC_SPEC_VERSION = "0.8.11"
