"""Parked-future wake-ups: tasks wait on a future, no polling, until woken.

The one helper for "wait until something changes": a consumer for work, the
dispatcher for room, a publisher for a free slot, a joiner for the queue to
settle, a sleep that can be ended early.

Level-triggered: a waiter looks at its condition and parks in the same step (no
await in between) and looks again when woken, so a wake-up while nobody is
parked is never needed later, and a spurious one costs only a look.

Cancellation-safe: a waiter that leaves (cancelled, or its deadline came) is
taken out, never woken in vain; one handed a turn by `wake` that leaves before
it runs passes the turn on, so no wake-up is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccdash.clock import Clock

# A parked future's result says how it was woken: True, handed a turn by `wake` (passed
# on if unused); None, woken with everyone by `wake_all`; False, its deadline came.
Parked = asyncio.Future[bool | None]


class Waiters(deque[Parked]):
    """The parked futures, oldest first.

    A deque so that its truth value, "is anyone parked?", costs what a deque's does:
    hot paths ask it per message (`if waiters: waiters.wake_all()`). Only the
    methods below change it.
    """

    __slots__ = ()

    async def park(self) -> None:
        """Wait until woken (or an error given to `fail_all` is raised)."""
        fut: Parked = asyncio.get_running_loop().create_future()
        self.append(fut)
        try:
            await fut
        except BaseException:
            self._left(fut)
            raise

    async def park_until(self, clock: Clock, when: float) -> bool:
        """Wait until woken (True) or until `clock` reaches `when` (False)."""
        fut: Parked = asyncio.get_running_loop().create_future()
        self.append(fut)
        timer = clock.call_at(when, partial(self._time_up, fut))
        try:
            return await fut is not False
        except BaseException:
            self._left(fut)
            raise
        finally:
            timer.cancel()

    def wake(self, n: int = 1) -> int:
        """Hand a turn to up to `n` waiters, oldest first; returns how many woke."""
        woke = 0
        while woke < n and self:
            fut = self.popleft()
            if not fut.done():
                fut.set_result(True)
                woke += 1
        return woke

    def wake_all(self) -> None:
        """Wake everyone parked."""
        while self:
            fut = self.popleft()
            if not fut.done():
                fut.set_result(None)

    def fail_all(self, exc: BaseException) -> None:
        """Wake everyone parked with `exc` raised (the thing waited on is closed)."""
        while self:
            fut = self.popleft()
            if not fut.done():
                fut.set_exception(exc)

    def _time_up(self, fut: Parked) -> None:
        if not fut.done():
            self.remove(fut)
            fut.set_result(False)

    def _left(self, fut: Parked) -> None:
        """The waiter of `fut` leaves by an exception (cancelled, mostly)."""
        if not fut.done() or fut.cancelled():
            fut.cancel()
            with contextlib.suppress(ValueError):  # a wake-up popped it (and skipped it)
                self.remove(fut)
        elif fut.exception() is None and fut.result():
            # Handed a turn (a slot, say) but leaving before it ran: pass it on, or
            # the next waiter would wait for another one.
            self.wake(1)
