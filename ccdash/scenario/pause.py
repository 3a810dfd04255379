"""A sleep on the run's clock that another task can end early.

The workload's one driver coroutine sleeps until its next arrival or drill with it;
`stop()`, a newly scheduled callback and drill progress while draining wake it.
"""

from __future__ import annotations

import asyncio

from ccdash.clock import Clock


class Pause:
    """Sleeps until a clock time (`until`); `wake` ends the current sleep now."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._waker: asyncio.Future[None] | None = None

    async def until(self, when: float) -> None:
        """Sleep until clock time `when`, or until `wake` is called."""
        if when <= self.clock.now():
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waker = fut

        def ring() -> None:
            if not fut.done():
                fut.set_result(None)

        timer = self.clock.call_at(when, ring)
        try:
            await fut
        finally:
            timer.cancel()
            self._waker = None

    def wake(self) -> None:
        """End the current sleep, if one is under way."""
        if self._waker is not None and not self._waker.done():
            self._waker.set_result(None)
