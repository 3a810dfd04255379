"""JSON from outside read as ccdash writes it: finite numbers of a sane size only.

Python's json reads `NaN` and `Infinity`, turns `1e999` into inf and an integer of
hundreds of digits into an int that float() cannot take; each of those then fails
far from the read (int(inf), a NaN compared or drawn). `loads` refuses them where
the text is read, with a ValueError like any other malformed JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
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


def _int_of_at_most(limit: int) -> Callable[[str], int]:
    def small_int(text: str) -> int:
        digits = len(text.lstrip("-"))
        if digits > limit:
            raise ValueError(f"an integer of {digits} digits")
        return int(text)

    return small_int


def not_a_number(text: str) -> Any:
    """`parse_constant`: NaN, Infinity and -Infinity are a ValueError."""
    raise ValueError(f"{text} is not a number ccdash writes")


def loads(data: str | bytes | bytearray, *, max_int_digits: int | None = MAX_INT_DIGITS) -> Any:
    """`json.loads`, but NaN, Infinity, numbers too big for a float and integers of
    more than `max_int_digits` digits are a ValueError (RecursionError for deep nesting,
    as json). `max_int_digits=None`: integers of any size Python reads (a message body
    may hold them; the caller checks the numbers it counts with)."""
    parse_int = int if max_int_digits is None else _int_of_at_most(max_int_digits)
    return json.loads(data, parse_float=finite, parse_int=parse_int, parse_constant=not_a_number)


__all__ = ["MAX_INT_DIGITS", "finite", "loads", "not_a_number"]
