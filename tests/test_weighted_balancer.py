"""The weighted balancer is smooth weighted round-robin (nginx's), over the consumers
that have room, whatever comes and goes."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock
from ccdash.engine.balancers import Candidates, make_balancer


@dataclass(eq=False)
class _T:
    """A balancer target."""

    ordinal: int
    weight: int = 1
    held: int = 0
    ewma: float = 0.0


class _Reference:
    """nginx's smooth weighted round-robin, written out plainly (a scan per pick): each
    candidate's current weight grows by its weight, the highest (the first in creation
    order on a tie) is chosen and gives back the candidates' total. One without room
    is out of the turn: its current weight stays as it was."""

    def __init__(self) -> None:
        self.current: dict[int, int] = {}

    def pick(self, candidates: list[_T]) -> _T:
        best = None
        total = 0
        for c in sorted(candidates, key=lambda c: c.ordinal):
            cur = self.current[c.ordinal] = self.current.get(c.ordinal, 0) + c.weight
            total += c.weight
            if best is None or cur > self.current[best.ordinal]:
                best = c
        assert best is not None
        self.current[best.ordinal] -= total
        return best


def _names(picks: list[_T]) -> str:
    return "".join("abcdefgh"[t.ordinal] for t in picks)


def test_weights_5_1_1_pick_in_the_smooth_order() -> None:
    """Weights 5, 1, 1 give nginx's smooth order a a b a c a a, not a burst of a."""
    targets = [_T(0, 5), _T(1, 1), _T(2, 1)]
    cands = Candidates.of(targets)
    balancer = make_balancer("weighted", random.Random(1))
    balancer.attach(cands)
    assert _names([balancer.pick(cands) for _ in range(14)]) == "aabacaa" * 2


def test_picks_match_smooth_wrr_as_room_and_weights_change() -> None:
    """Over random picks, consumers filling up and freeing room, joining, and weights
    changing (the consumer then filed again, as the dispatcher does when its room
    changes), every pick is the one smooth weighted round-robin makes."""
    rng = random.Random(5)
    pool = [_T(i, rng.choice((1, 1, 2, 3, 5))) for i in range(6)]
    cands = Candidates.of(pool[:4])
    balancer = make_balancer("weighted", random.Random(1))
    balancer.attach(cands)
    ref = _Reference()
    for step in range(5000):
        if len(cands):
            got = balancer.pick(cands)
            want = ref.pick(cands.members())
            assert got is want, f"step {step}"
        roll = rng.random()
        t = rng.choice(pool)
        if roll < 0.15:
            cands.discard(t)
        elif roll < 0.35:
            cands.put(t)
        elif roll < 0.4:
            t.weight = rng.choice((1, 2, 3, 4, 7))
            if t in cands:
                cands.put(t)


def test_shares_follow_weights_and_a_weight_set_at_runtime() -> None:
    """Shares follow the weights among those with room; a weight changed while it
    runs (nobody told) takes over within a round, and weight 0 gets nothing while
    anyone with a weight has room, and takes turns when alone."""
    targets = [_T(0, 3), _T(1, 1), _T(2, 1), _T(3, 1)]
    cands = Candidates.of(targets)
    balancer = make_balancer("weighted", random.Random(1))
    balancer.attach(cands)
    assert Counter(balancer.pick(cands).ordinal for _ in range(600)) == {
        0: 300,
        1: 100,
        2: 100,
        3: 100,
    }
    targets[0].weight = 1
    targets[3].weight = 5
    for _ in range(8):  # a round, to see the change
        balancer.pick(cands)
    shares = Counter(balancer.pick(cands).ordinal for _ in range(800))
    assert all(abs(shares[o] - n) <= 2 for o, n in {0: 100, 1: 100, 2: 100, 3: 500}.items())
    targets[3].weight = 0
    for _ in range(8):
        balancer.pick(cands)
    assert 3 not in {balancer.pick(cands).ordinal for _ in range(300)}
    for t in targets[:3]:
        cands.discard(t)
    assert [balancer.pick(cands).ordinal for _ in range(3)] == [3, 3, 3]
    zero = _T(4, 0)
    cands.put(zero)
    assert {balancer.pick(cands).ordinal for _ in range(30)} == {3, 4}


async def test_a_weight_set_on_the_engine_counts_from_the_next_dispatch() -> None:
    """engine.set_weight tells the weighted balancer: after a round of four equal
    consumers, raising the last one's weight to 10 gives it the very next message and
    10 of the next 13 (smooth weighted round-robin from the change), not its old turn
    after the others'."""
    clock = FakeClock()
    release = asyncio.Event()

    async def hold(d: Delivery) -> None:
        await release.wait()

    cfg = EngineConfig(consumers=4, balancer="weighted", prefetch=64, seed=1)
    async with Engine(cfg, handler=hold, clock=clock) as engine:
        ids = engine.consumer_ids()

        def held() -> Counter[str]:
            return Counter({c.id: c.in_flight for c in engine.snapshot().consumers})

        for i in range(4):
            await engine.publish({"n": i})
        assert held() == dict.fromkeys(ids, 1)
        engine.set_weight(ids[3], 10)
        await engine.publish({"n": 4})
        assert held()[ids[3]] == 2, held()
        for i in range(12):
            await engine.publish({"n": 5 + i})
        assert held() - Counter(dict.fromkeys(ids, 1)) == {
            ids[0]: 1,
            ids[1]: 1,
            ids[2]: 1,
            ids[3]: 10,
        }
        release.set()
        await engine.join(timeout=10)
