"""JSON from outside read as ccdash writes it: finite numbers of a sane size only.

Python's json reads `NaN` and `Infinity`, turns `1e999` into inf and an integer of
hundreds of digits into an int that float() cannot take; each of those then fails
far from the read (int(inf), a NaN compared or drawn). `loads` refuses them where
the text is read, with a ValueError like any other malformed JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ccdash.text import sanitize

# Past about 308 digits float() of an integer overflows (far from the read); a body or
# a 128-bit id may well hold 40.
MAX_INT_DIGITS = 300


def finite(text: str) -> float:
    """A JSON float that is a float (`parse_float`): 1e999 is a ValueError, not inf."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {sanitize(text, 40)} is out of range")
    return value


def _small_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits")
    return int(text)


def not_a_number(text: str) -> Any:
    """`parse_constant`: NaN, Infinity and -Infinity are a ValueError."""
    raise ValueError(f"{text} is not a number ccdash writes")


def loads(data: str | bytes | bytearray) -> Any:
    """`json.loads`, but NaN, Infinity, numbers too big for a float and integers of
    more than 300 digits are a ValueError (RecursionError for deep nesting, as json)."""
    return json.loads(data, parse_float=finite, parse_int=_small_int, parse_constant=not_a_number)


__all__ = ["MAX_INT_DIGITS", "finite", "loads", "not_a_number"]
