"""Where callers of a broker wait: consumers for a message, publishers for room.

Both park on futures (no polling). One timer, at the broker's say, wakes them
to look again: at the next retry or lease deadline, or for a slow re-check of
what other processes sharing the store have done.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from ccdash.clock import Clock, TimerHandle

_INF = float("inf")


class Parking:
    """Parked readers (wait_ready) and writers (publish on a full queue), and a timer."""

    def __init__(
        self, clock: Clock, on_timer: Callable[[], Any], on_park: Callable[[], Any]
    ) -> None:
        self.clock = clock
        self.on_timer = on_timer
        self.on_park = on_park  # someone just parked: set the timer
        self.readers: deque[asyncio.Future[None]] = deque()
        self.writers: deque[asyncio.Future[None]] = deque()
        self._timer: TimerHandle | None = None
        self._timer_at = _INF

    def __bool__(self) -> bool:
        return bool(self.readers or self.writers)

    async def park_reader(self) -> None:
        """Wait until woken."""
        fut = asyncio.get_running_loop().create_future()
        self.readers.append(fut)
        self.on_park()
        try:
            await fut
        finally:
            if not fut.done():
                fut.cancel()

    async def park_writer(self, room: Callable[[], int]) -> None:
        """Wait until woken for room; a publisher leaving (cancelled) just after being
        woken passes the wake-up on, or the next one would wait for another slot."""
        fut = asyncio.get_running_loop().create_future()
        self.writers.append(fut)
        self.on_park()
        try:
            await fut
        except BaseException:
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled() and room() > 0:
                self.wake_writers(1)
            raise

    def wake_readers(self) -> None:
        """Wake every parked reader."""
        readers = self.readers
        while readers:
            fut = readers.popleft()
            if not fut.done():
                fut.set_result(None)

    def wake_writers(self, n: int) -> None:
        """Wake up to `n` parked writers, oldest first."""
        writers = self.writers
        while n > 0 and writers:
            fut = writers.popleft()
            if not fut.done():
                fut.set_result(None)
                n -= 1

    def wake_all(self) -> None:
        """Wake everyone (closing)."""
        self.wake_readers()
        self.wake_writers(len(self.writers))

    def arm(self, when: float) -> None:
        """Have the timer fire at `when` (clock time), unless it fires sooner already."""
        if when >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.clock.call_at(when, self._fire)

    def cancel(self) -> None:
        """Stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = _INF

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = _INF
        self.on_timer()
