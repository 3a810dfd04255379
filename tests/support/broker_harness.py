"""One contract, three brokers: the `brokers` fixture hands a test a harness for
memory, SQLite or Redis (parametrised), so each contract test body runs on all three.

A test marked `@pytest.mark.brokers("memory", "sqlite")` runs on those only: it
drives broker deadlines with the fake clock, which a real Redis cannot follow
(tests/test_redis_broker.py holds the Redis variants on short real times).

The harness smooths over what is not the contract: the SQLite broker commits on
a writer thread (settle and the fake clock, a SettlingClock, wait for the commits),
and a Redis worker reads ahead into a local buffer and sees fleet counts through a
snapshot (receive hands the buffer back first, so delivery order is Redis's;
stats/dead_letters refresh).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ccdash.brokers.base import Broker, BrokerClosed, DeadLetter, Delivery, QueueConfig, QueueStats
from ccdash.brokers.memory import MemoryBroker
from ccdash.brokers.sqlite import SqliteBroker
from support.settling_clock import SettlingClock

KINDS = ("memory", "sqlite", "redis")
# A test that drives deadlines with the fake clock: a real Redis cannot follow it.
fake_clock_only = pytest.mark.brokers("memory", "sqlite")


class Brokers:
    """Makes brokers of one kind and does what a test needs the same way on each."""

    def __init__(
        self, kind: str, clock: SettlingClock, tmp_path: Path, redis_url: str | None
    ) -> None:
        self.kind = kind
        self.clock = clock
        self.tmp_path = tmp_path
        self.redis_url = redis_url
        self.made: list[Any] = []

    @property
    def fake_time(self) -> bool:
        """Does the fake clock drive this kind's deadlines?"""
        return self.kind != "redis"

    async def make(self, **config: Any) -> Any:
        """A broker of this kind with these QueueConfig fields (seed 1 unless given)."""
        config.setdefault("seed", 1)
        broker: Any
        if self.kind == "memory":
            broker = MemoryBroker(QueueConfig(**config), clock=self.clock)
        elif self.kind == "sqlite":
            broker = SqliteBroker(
                str(self.tmp_path / f"q{len(self.made)}.db"),
                QueueConfig(**config),
                clock=self.clock,
            )
            self.clock.watch(broker)
        else:
            from ccdash.brokers.redis import RedisBroker

            assert self.redis_url is not None
            broker = RedisBroker.from_url(
                f"{self.redis_url}&ttl=0.6&worker=w{len(self.made)}", QueueConfig(**config)
            )
            await broker.open()
        self.made.append(broker)
        return broker

    async def settle(self) -> None:
        """Let every broker finish what it has in flight (commits, flushes, reads)."""
        if self.kind == "redis":
            for b in self.made:
                with contextlib.suppress(BrokerClosed):
                    await asyncio.wait_for(b.settled(), 5)
        else:
            await self.clock.settle()

    async def receive(self, broker: Broker, holders: Sequence[str]) -> list[Delivery]:
        """Lease up to len(holders) of the messages ready now, in delivery order."""
        if self.kind != "redis":
            return await broker.receive(holders)
        b: Any = broker
        await asyncio.wait_for(b.settled(), 5)
        await b.hand_back()  # read-ahead goes back: the order is Redis's, not the buffer's
        await b.refresh()
        if b.stats().ready == 0:
            return []
        async with asyncio.timeout(5):
            await b.wait_ready()
            await b.settled()
        got: list[Delivery] = await b.receive(holders)
        return got

    async def lease(self, broker: Broker, holder: str = "c") -> Delivery:
        """Receive exactly one message for `holder`."""
        [delivery] = await self.receive(broker, [holder])
        return delivery

    async def stats(self, broker: Broker) -> QueueStats:
        """The queue's counts once everything in flight has landed."""
        await self.settle()
        if self.kind == "redis":
            b: Any = broker
            await b.hand_back()  # read ahead, not leased: ready, as the contract counts it
            await b.refresh()
        return broker.stats()

    async def dead_letters(self, broker: Broker, limit: int | None = None) -> list[DeadLetter]:
        """The DLQ view, newest first, once everything in flight has landed."""
        await self.settle()
        if self.kind == "redis":
            await broker.refresh()  # type: ignore[attr-defined]
        return broker.dead_letters() if limit is None else broker.dead_letters(limit=limit)

    async def close(self) -> None:
        """Close every broker made."""
        for b in self.made:
            await b.close()


def parametrize_brokers(metafunc: pytest.Metafunc) -> None:
    """conftest hook: a test using `brokers` or `engines` (tests/support/engine_harness.py)
    runs once per kind (or per marked kind)."""
    if "broker_kind" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("brokers")
    kinds = marker.args if marker else KINDS
    assert set(kinds) <= set(KINDS), kinds
    metafunc.parametrize("broker_kind", kinds)


@pytest.fixture
async def brokers(
    broker_kind: str, fake_clock: SettlingClock, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Brokers]:
    """The harness for this test's broker kind; its brokers are closed at the end."""
    url = request.getfixturevalue("redis_url") if broker_kind == "redis" else None
    harness = Brokers(broker_kind, fake_clock, tmp_path, url)
    yield harness
    await harness.close()
