"""Dispatch costs the same whatever the pool size: consumers with room are kept as room
changes, and every balancer picks among them without scanning the pool."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock
from ccdash.engine.balancers import BALANCERS, Candidates, make_balancer
from ccdash.engine.consumer import Consumer


class _Counted:
    """A balancer target that counts how often its fields are read."""

    reads = 0

    def __init__(self, ordinal: int, weight: int = 1) -> None:
        self._ordinal, self._weight, self._held, self._ewma = ordinal, weight, 0, 0.01

    def _read(self, value: Any) -> Any:
        _Counted.reads += 1
        return value

    ordinal = property(lambda self: self._read(self._ordinal))
    weight = property(lambda self: self._read(self._weight))
    held = property(lambda self: self._read(self._held))
    ewma = property(lambda self: self._read(self._ewma))


@pytest.mark.parametrize("name", BALANCERS)
def test_a_pick_among_512_candidates_reads_a_few_of_them(name: str) -> None:
    """Each balancer's pick among 512 consumers with room reads the fields of a
    handful of them, not of all 512."""
    targets = [_Counted(i, weight=1 + i % 3) for i in range(512)]
    cands: Candidates[Any] = Candidates.of(targets)
    balancer = make_balancer(name, random.Random(3))
    balancer.attach(cands)
    for _ in range(20):
        balancer.pick(cands)
    _Counted.reads = 0
    for _ in range(100):
        balancer.pick(cands)
    assert _Counted.reads <= 100 * 8


@pytest.mark.parametrize("name", BALANCERS)
async def test_one_message_into_an_idle_pool_of_512_looks_at_few_consumers(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishing one message into 512 idle consumers reads the room of a handful of
    them (the dispatcher keeps who has room), and it is handled once."""
    clock = FakeClock()
    done: Counter[str] = Counter()

    async def handler(d: Delivery) -> None:
        done[d.consumer_id] += 1

    cfg = EngineConfig(
        consumers=512,
        max_consumers=512,
        balancer=name,
        seed=2,
        visibility_timeout=60.0,
        heartbeat_interval=10.0,
        heartbeat_timeout=30.0,
    )
    engine = Engine(cfg, handler=handler, clock=clock)
    await engine.start()
    try:
        await asyncio.sleep(0)
        reads = [0]
        room = Consumer.room

        def counting(self: Consumer) -> int:
            reads[0] += 1
            return room.fget(self)  # type: ignore[attr-defined,no-any-return]

        monkeypatch.setattr(Consumer, "room", property(counting))
        await engine.publish({"n": 1})
        assert reads[0] <= 8
        monkeypatch.undo()
        await clock.run_until(lambda: engine.snapshot().acked == 1)
        assert sum(done.values()) == 1
    finally:
        await engine.stop(grace=0)


def test_weighted_shares_follow_weights_as_candidates_come_and_go() -> None:
    """Weighted picks in proportion to weight among those with room, and one that was
    away (full) rejoins at the current turn instead of catching up in a burst."""
    targets = [_Counted(i, weight=w) for i, w in enumerate((3, 1, 1, 1))]
    cands: Candidates[Any] = Candidates.of(targets)
    balancer = make_balancer("weighted", random.Random(1))
    balancer.attach(cands)
    shares = Counter(balancer.pick(cands)._ordinal for _ in range(600))
    assert shares == Counter({0: 300, 1: 100, 2: 100, 3: 100})
    cands.discard(targets[1])
    away = Counter(balancer.pick(cands)._ordinal for _ in range(500))
    assert 1 not in away
    cands.put(targets[1])
    back = [balancer.pick(cands)._ordinal for _ in range(12)]
    assert back.count(1) <= 3
