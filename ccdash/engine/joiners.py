"""Joiners: callers of `Engine.join` parked until every published message is settled."""

from __future__ import annotations

from collections.abc import Callable

from ccdash.clock import Clock
from ccdash.waiters import Waiters


class Joiners:
    """Futures waiting for `outstanding() == 0`; woken as work completes, never polled."""

    def __init__(self, clock: Clock, outstanding: Callable[[], int]) -> None:
        self._clock = clock
        self._outstanding = outstanding
        self.waiting = Waiters()

    def settled(self) -> bool:
        """Nothing published is still unacked and alive."""
        return self._outstanding() == 0

    async def wait(self, timeout: float | None) -> None:  # noqa: ASYNC109 - the join contract
        """Until settled; TimeoutError when `timeout` runs out."""
        if self.settled():
            return
        if timeout is None:
            await self.waiting.park()
        elif not await self.waiting.park_until(self._clock, self._clock.now() + timeout):
            raise TimeoutError(f"join timed out after {timeout}s")

    def check(self) -> None:
        """Wake the joiners if everything is settled (called as work completes)."""
        if self.waiting and self.settled():
            self.waiting.wake_all()

    def on_tick(self, now: float) -> None:
        """Health-tick hook: leases that expired into the DLQ settle messages unseen."""
        self.check()

    def wake(self, error: BaseException | None = None) -> None:
        """Wake every joiner: normally, or with `error` (the engine stopped)."""
        if error is None:
            self.waiting.wake_all()
        else:
            self.waiting.fail_all(error)
