"""A fake clock that SQLite brokers can keep up with.

`FakeClock.advance` settles after each timer it fires, so every
task a timer wakes runs before time moves on. A SQLite broker commits on a writer
thread, which the loop does not count as pending work: on a plain fake clock, time
would move on before a commit lands. `SettlingClock` settles until the SQLite
brokers it watches are idle too (it overrides `FakeClock.settle`, which `advance`
and `run_until` call); with none watched it is a plain `FakeClock`.
"""

from __future__ import annotations

from typing import Protocol

from ccdash.clock import FakeClock, settle


class Settles(Protocol):
    """A broker with work off the event loop (SqliteBroker)."""

    def busy(self) -> bool:
        """Are operations queued or being committed?"""
        ...

    async def settled(self) -> None:
        """Return once `busy()` is false."""
        ...


class SettlingClock(FakeClock):
    """A FakeClock that, whenever it settles, also waits for the brokers it watches."""

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__(start)
        self.watched: list[Settles] = []

    def watch(self, broker: Settles) -> None:
        """Settle on this broker's writer thread from now on."""
        self.watched.append(broker)

    async def settle(self) -> None:
        """Settle the event loop until no watched broker has operations in flight."""
        while True:
            await settle()
            busy = [b for b in self.watched if b.busy()]
            if not busy:
                return
            for b in busy:
                await b.settled()
