"""The contract between stage0 (the nspod CLI) and stage1 (the systemd executor).

stage0 imports this module and nothing else from stage1; stage1 never imports stage0.
Everything here is versioned by :data:`ABI_VERSION` and documented in ``stage1/ABI.md``.

What the contract fixes so far:

* how either stage reports its own failure: an :class:`Error` carrying a one-line message and
  a hint, printed once by the program's ``main()``, and the exit code
  :attr:`ExitCode.FAILURE` (254), kept apart from any exit code an app passes through.
"""

from __future__ import annotations

import enum

ABI_VERSION = 1

__all__ = ["ABI_VERSION", "Error", "ExitCode"]


class ExitCode(enum.IntEnum):
    """Exit codes of nspod's own programs. ``run`` passes the app's code through instead."""

    OK = 0
    USAGE = 2
    FAILURE = 254


class Error(Exception):
    """Root of nspod's error hierarchy: an expected failure the user can act on.

    ``message`` is one line saying what went wrong; ``hint`` says what to do about it.
    Subclasses set a default ``hint``; callers may pass a more specific one.
    """

    hint: str = "rerun with --debug for details"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def diagnostics(self) -> str:
        """The two lines a user sees: what failed, and what to do next."""
        return f"{self.message}\n  hint: {self.hint}"
