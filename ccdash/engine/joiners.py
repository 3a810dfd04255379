"""Joiners: callers of `Engine.join` parked until every published message is settled."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ccdash.clock import Clock


class Joiners:
    """Futures waiting for `outstanding() == 0`; woken as work completes, never polled."""

    def __init__(self, clock: Clock, outstanding: Callable[[], int]) -> None:
        self._clock = clock
        self._outstanding = outstanding
        self.waiting: list[asyncio.Future[None]] = []

    def settled(self) -> bool:
        """Nothing published is still unacked and alive."""
        return self._outstanding() == 0

    async def wait(self, timeout: float | None) -> None:  # noqa: ASYNC109 - the join contract
        """Until settled; TimeoutError when `timeout` runs out."""
        if self.settled():
            return
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        timer = None
        if timeout is not None:

            def expire() -> None:
                if not fut.done():
                    fut.set_exception(TimeoutError(f"join timed out after {timeout}s"))

            timer = self._clock.call_at(self._clock.now() + timeout, expire)
        try:
            await fut
        finally:
            if timer is not None:
                timer.cancel()
            if fut in self.waiting:
                self.waiting.remove(fut)

    def check(self) -> None:
        """Wake the joiners if everything is settled (called as work completes)."""
        if self.waiting and self.settled():
            self.wake()

    def on_tick(self, now: float) -> None:
        """Health-tick hook: leases that expired into the DLQ settle messages unseen."""
        self.check()

    def wake(self, error: BaseException | None = None) -> None:
        """Wake every joiner: normally, or with `error` (the engine stopped)."""
        for fut in self.waiting:
            if not fut.done():
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)
        self.waiting.clear()
