"""One monotonic clock abstraction, injected wherever time matters.

`MonotonicClock` is the real one (the event loop's own monotonic time).
`FakeClock` moves only when a test tells it to, firing due timers in deadline
order and letting the woken tasks run before it goes on, so tests never sleep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time, timers and sleeping, all in seconds."""

    def now(self) -> float:
        """Current monotonic time."""
        ...

    def call_at(self, when: float, callback: Callable[[], Any]) -> TimerHandle:
        """Run `callback` once the clock reaches `when`."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for `seconds` of this clock's time."""
        ...


class MonotonicClock:
    """The real clock: `time.monotonic`, which is also asyncio's loop time."""

    def __init__(self) -> None:
        # The builtin itself, not a method wrapping it: `now` is on the per-message path.
        self.now: Callable[[], float] = time.monotonic

    def call_at(self, when: float, callback: Callable[[], Any]) -> TimerHandle:
        """Schedule `callback` on the running loop at monotonic time `when`."""
        loop = asyncio.get_running_loop()
        # loop.time() is time.monotonic() for the default loops; convert anyway.
        return loop.call_at(when - time.monotonic() + loop.time(), callback)

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await asyncio.sleep(max(0.0, seconds))


class _FakeTimer:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], Any]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that only moves in `advance`; timers fire in deadline order."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        """Current fake time."""
        return self._now

    def call_at(self, when: float, callback: Callable[[], Any]) -> TimerHandle:
        """Schedule `callback` for fake time `when`."""
        timer = _FakeTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        """Suspend until fake time has advanced by `seconds`."""
        fut = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        timer = self.call_at(self._now + max(0.0, seconds), wake)
        try:
            await fut
        finally:
            timer.cancel()

    def block(self, seconds: float) -> None:
        """Let time pass with nothing run meanwhile, as a handler that blocks the event
        loop (`time.sleep` in `async def`) makes it pass; due timers fire afterwards."""
        self._now += max(0.0, seconds)

    def next_timer(self) -> float | None:
        """When the earliest pending timer is due, if any."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    async def settle(self) -> None:
        """Let the woken tasks run before time moves on (a subclass may wait for more)."""
        await settle()

    async def advance(self, seconds: float) -> None:
        """Move time forward, firing due timers in order and settling after each."""
        target = self._now + seconds
        await self.settle()
        while True:
            due = self.next_timer()
            if due is None or due > target:
                break
            _, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, due)
            timer.callback()
            await self.settle()
        self._now = max(self._now, target)  # a `block` meanwhile may have gone past it
        await self.settle()

    async def run_until(
        self, predicate: Callable[[], bool], *, step: float = 0.01, limit: float = 600.0
    ) -> float:
        """Advance in `step`s until `predicate()` holds; return the fake time it took.

        Raises TimeoutError after `limit` fake seconds, so a broken test fails
        instead of spinning forever.
        """
        start = self._now
        await self.settle()
        while not predicate():
            if self._now - start > limit:
                raise TimeoutError(f"condition not met within {limit} fake seconds")
            await self.advance(step)
        return self._now - start


async def settle(max_rounds: int = 10_000) -> None:
    """Yield to the event loop until no callback is ready to run.

    Uses the loop's ready queue where CPython exposes it; otherwise yields a
    fixed number of times.
    """
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    for _ in range(max_rounds if ready is not None else 50):
        await asyncio.sleep(0)
        if ready is not None and not ready:
            # One more round: a task finishing may schedule its waiters.
            await asyncio.sleep(0)
            if not ready:
                return
