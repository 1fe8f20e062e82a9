"""Resource quantities (``schema/types/resource/quantity.go``): ``250m``, ``1.5Gi``, ``1e3``, ``128``.

Parsed to an exact ``Decimal`` of base units (bytes, cores). Capital ``K`` is refused, as the
spec authors' code does, although their prose lists it.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Self

from stage0.schema.types import Invalid

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))([eE][+-]?\d+|[A-Za-z]*)")


class Quantity(str):
    """The quantity as written; :attr:`value` is its exact size in base units."""

    value: Decimal

    def __new__(cls, raw: object) -> Self:
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise Invalid("a quantity must be a string such as '512Mi' or a number")
        text = raw if isinstance(raw, str) else repr(raw)
        match = _QUANTITY.fullmatch(text)
        if match is None:
            raise Invalid(f"{text!r} is not a quantity (e.g. 250m, 1.5Gi, 1e3)")
        number, suffix = match.groups()
        try:
            if suffix[:1] in ("e", "E"):
                value = Decimal(number) * Decimal(10) ** int(suffix[1:])
            elif suffix in _SUFFIXES:
                value = Decimal(number) * _SUFFIXES[suffix]
            else:
                raise Invalid(f"{text!r} has an unknown suffix {suffix!r} (use k M G T P E or Ki Mi Gi …)")
        except InvalidOperation:
            raise Invalid(f"{text!r} is not a quantity") from None
        quantity = super().__new__(cls, text)
        quantity.value = value
        return quantity
