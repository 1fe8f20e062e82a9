"""Quoting for systemd unit files, in one place (``systemd.syntax(7)``, ``systemd.service(5)``)."""

from __future__ import annotations

import re

from stage1.abi import Error

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


def path(value: str) -> str:
    """A setting that holds one absolute path (``WorkingDirectory=``): taken literally but for
    specifiers; what the unit parser would strip or end a line at is refused, never misread."""
    if not value.startswith("/") or value != value.strip() or any(c in value for c in "\n\r\0"):
        raise Error(
            f"cannot write the path {value!r} into a unit",
            hint="use an absolute path without control characters or surrounding blanks",
        )
    return specifiers(value)


def nspawn_path(value: str) -> str:
    """A path in nspawn's ``--bind=SRC:DST`` and ``--overlay=A:B:DST``, which split at ``:`` and
    read backslash escapes: ``\\:`` is a colon in the path (commas and blanks need nothing)."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def nspawn_bind(option: str, *paths: str) -> str:
    """``--bind=SRC:DST`` and its kin (``--bind-ro``, ``--overlay``), each path escaped."""
    return f"{option}=" + ":".join(nspawn_path(p) for p in paths)


def unit_path(value: str) -> str:
    """A path as the name of its mount unit (``systemd-escape --path``), without the suffix."""
    trimmed = "/".join(part for part in value.split("/") if part)
    if not trimmed:
        return "-"
    out = []
    for index, char in enumerate(trimmed):
        if char == "/":
            out.append("-")
        elif char.isascii() and (char.isalnum() or char in ":_.") and not (index == 0 and char == "."):
            out.append(char)
        else:
            out += [f"\\x{byte:02x}" for byte in char.encode()]
    return "".join(out)
