"""Where callers of a broker wait: consumers for a message, publishers for room.

Both park on futures (no polling). One timer, at the broker's say, wakes them
to look again: at the next retry or lease deadline, or for a slow re-check of
what other processes sharing the store have done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ccdash.clock import Clock, TimerHandle
from ccdash.waiters import Waiters

_INF = float("inf")


class Parking:
    """Parked readers (wait_ready) and writers (publish on a full queue), and a timer."""

    def __init__(
        self, clock: Clock, on_timer: Callable[[], Any], on_park: Callable[[], Any]
    ) -> None:
        self.clock = clock
        self.on_timer = on_timer
        self.on_park = on_park  # someone is about to park: set the timer
        self.readers = Waiters()
        self.writers = Waiters()
        self._timer: TimerHandle | None = None
        self._timer_at = _INF

    def __bool__(self) -> bool:
        return bool(self.readers or self.writers)

    async def park_reader(self) -> None:
        """Wait until woken."""
        self.on_park()
        await self.readers.park()

    async def park_writer(self) -> None:
        """Wait until woken for room (a turn: passed on if the publisher leaves first)."""
        self.on_park()
        await self.writers.park()

    def wake_readers(self) -> None:
        """Wake every parked reader."""
        self.readers.wake_all()

    def wake_writers(self, n: int) -> None:
        """Wake up to `n` parked writers, oldest first."""
        self.writers.wake(n)

    def wake_all(self) -> None:
        """Wake everyone (closing)."""
        self.readers.wake_all()
        self.writers.wake_all()

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
