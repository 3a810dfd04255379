"""The one way tests wait on real time: poll a condition with a deadline (never a
fixed sleep that hopes the condition holds by then)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


def wait_until(
    pred: Callable[[], Any],
    within: float,
    what: str,
    step: float = 0.05,
    guard: Callable[[], None] | None = None,
) -> float:
    """Poll `pred` until it is true; returns how long it took. AssertionError (naming
    `what`) when `within` seconds pass first; `guard` is called every poll (it raises
    when a process the wait depends on has died, so a crash fails at once)."""
    t0 = time.monotonic()
    while not pred():
        if guard is not None:
            guard()
        if time.monotonic() - t0 > within:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - t0


async def until(
    pred: Callable[[], Any | Awaitable[Any]], within: float, what: str, step: float = 0.05
) -> float:
    """`wait_until` for a running event loop: `pred` may be a coroutine function, and the
    loop keeps running between polls; returns how long it took."""
    t0 = time.monotonic()
    while True:
        value = pred()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return time.monotonic() - t0
        if time.monotonic() - t0 > within:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(step)
