"""A sleep on the run's clock that another task can end early.

The workload's one driver coroutine sleeps until its next arrival or drill with it;
`stop()`, a newly scheduled callback and drill progress while draining wake it.
"""

from __future__ import annotations

import asyncio

from ccdash.clock import Clock
from ccdash.waiters import Waiters


class Pause:
    """Sleeps until a clock time (`until`); `wake` ends the current sleep now."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._sleeping = Waiters()

    async def until(self, when: float) -> None:
        """Sleep until clock time `when`, or until `wake` is called."""
        if when <= self.clock.now():
            await asyncio.sleep(0)
            return
        await self._sleeping.park_until(self.clock, when)

    def wake(self) -> None:
        """End the current sleep, if one is under way."""
        self._sleeping.wake_all()
