"""Small helpers shared by every layer: "did you mean" hints and async-callable checks.

Kept at the bottom of the package (like `clock` and `text`) so the engine, the
scenario loader and the command line use one copy each.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable
from typing import Any


def closest(word: str, valid: Iterable[str]) -> str | None:
    """The valid name closest to `word`, if one is close enough to suggest."""
    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, valid: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when something valid is close to `word`, else ``."""
    close = closest(word, valid)
    return f" (did you mean {close!r}?)" if close else ""


def is_async_callable(fn: Any) -> bool:
    """True for `async def` functions and for objects whose `__call__` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callable objects too
    )
