"""Error fingerprints: one key for every error text of one bug.

`PoisonMessage: poison message m587 always fails` and the same for m12 are one
fingerprint, `PoisonMessage: poison message <id> always fails`: ids, numbers, hex,
UUIDs and quoted values are masked, the exception type and the words stay.
"""

from __future__ import annotations

import functools
import re

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),  # quoted values
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
            r"[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\b\d+(?:\.\d+)*(?:ms|us|µs|s|m|h|%|[kKMG]i?B)?\b"), "<n>"),  # 3.5s, 10.0.0.1
    (re.compile(r"\b(?=[\w.:/-]*[A-Za-z])(?=[\w.:/-]*\d)[\w.:/-]+\b"), "<id>"),  # m587, c3-1
)


@functools.lru_cache(maxsize=1024)  # the grouped DLQ asks again for the same errors every tick
def fingerprint(error: str) -> str:
    """The error with its variable parts masked (the exception type kept)."""
    kind, sep, rest = error.partition(": ")
    if not sep or not re.fullmatch(r"[A-Za-z_][\w.]*", kind):
        kind, rest = "", error
    for pattern, mask in _MASKS:
        rest = pattern.sub(mask, rest)
    rest = re.sub(r"\s+", " ", rest).strip()
    return f"{kind}: {rest}" if kind else rest


__all__ = ["fingerprint"]
