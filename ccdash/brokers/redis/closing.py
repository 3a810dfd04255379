"""Closing while Redis may not answer: what is on its way is waited for only while
Redis keeps answering.

A paused or unreachable Redis answers nothing until the socket timeout, and the
write queue would wait out its whole drain allowance (10 s) for a reply that cannot
come; quitting the dashboard then took 12-15 s. A close waits while round trips
complete, so a healthy Redis that drains a long queue is never cut short, and gives
up after CLOSE_PATIENCE seconds without one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, Protocol

CLOSE_PATIENCE = 1.0  # seconds without a round trip after which a close stops waiting


class Answering(Protocol):
    """When Redis last completed a round trip (monotonic seconds; the flusher's)."""

    last_ok: float


async def while_answering(
    flusher: Answering, aw: Awaitable[Any], *, cap: float, since: float | None = None
) -> bool:
    """Wait for `aw` for up to `cap` seconds, giving up once Redis has completed no round
    trip for CLOSE_PATIENCE seconds (counted from `since` at the earliest: the start of
    the close; default now). True if it ended (its error, if any, is raised); False if
    it was given up (and cancelled)."""
    task = asyncio.ensure_future(aw)
    start = time.monotonic()
    since = start if since is None else since
    try:
        while not task.done():
            heard = max(flusher.last_ok, since)
            limit = min(start + cap, heard + CLOSE_PATIENCE)
            left = limit - time.monotonic()
            if left <= 0:
                return False
            await asyncio.wait([task], timeout=left)
    finally:
        if not task.done():
            task.cancel()
    task.result()
    return True


__all__ = ["CLOSE_PATIENCE", "while_answering"]
