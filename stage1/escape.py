"""Quoting for systemd unit files, in one place (``systemd.syntax(7)``, ``systemd.service(5)``)."""

from __future__ import annotations

import re

_NEEDS_QUOTES = re.compile(r"[\s\"'\\;]")


def specifiers(text: str) -> str:
    """``%`` starts a specifier in almost every setting: keep it literal."""
    return text.replace("%", "%%")


def quote(word: str, *, expand_dollar: bool = True) -> str:
    """One word of a command line or an ``Environment=`` assignment, quoted when it must be.

    ``$`` is doubled in command lines (where ``$VAR`` expands); ``Environment=`` does not expand.
    """
    word = specifiers(word)
    if expand_dollar:
        word = word.replace("$", "$$")
    if word and not _NEEDS_QUOTES.search(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def command(argv: tuple[str, ...] | list[str]) -> str:
    """An ``Exec*=`` value running exactly ``argv`` (argv[0] must be an absolute path)."""
    return " ".join(quote(arg) for arg in argv)


def assignment(name: str, value: str) -> str:
    """One ``Environment=`` entry."""
    return quote(f"{name}={value}", expand_dollar=False)
