"""Load balancers: which consumer with room gets the next delivery.

Each picks among `candidates` (consumers that have room for one more
delivery, in creation order). All randomness comes from the engine's one
seeded generator.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Target(Protocol):
    """What a balancer needs to know about a consumer."""

    ordinal: int  # creation order, unique
    weight: int
    held: int  # deliveries held now (buffered + in the handler)
    ewma: float  # smoothed handler latency, seconds


T = TypeVar("T", bound=Target)


class Balancer(Protocol):
    """Chooses one of the candidates (never empty)."""

    name: str

    def pick(self, candidates: Sequence[T]) -> T: ...


class RoundRobin:
    """Each consumer in turn, skipping those without room."""

    name = "round-robin"

    def __init__(self) -> None:
        self._last = -1

    def pick(self, candidates: Sequence[T]) -> T:
        after = [c for c in candidates if c.ordinal > self._last]
        chosen = after[0] if after else candidates[0]
        self._last = chosen.ordinal
        return chosen


class Weighted:
    """Smooth weighted round-robin (as nginx does): shares follow the weights,
    interleaved rather than in bursts."""

    name = "weighted"

    def __init__(self) -> None:
        self._current: dict[int, float] = {}

    def pick(self, candidates: Sequence[T]) -> T:
        current = self._current
        total = 0
        best: T | None = None
        best_score = float("-inf")
        for c in candidates:
            w = max(c.weight, 0)
            total += w
            score = current.get(c.ordinal, 0.0) + w
            current[c.ordinal] = score
            if score > best_score:
                best, best_score = c, score
        assert best is not None
        current[best.ordinal] = best_score - total
        if len(current) > 4 * len(candidates) + 16:  # forget consumers that are gone
            live = {c.ordinal for c in candidates}
            self._current = {k: v for k, v in current.items() if k in live}
        return best


class LeastInflight:
    """The consumer holding the fewest deliveries; ties go round-robin."""

    name = "least-inflight"

    def __init__(self) -> None:
        self._rr = RoundRobin()

    def pick(self, candidates: Sequence[T]) -> T:
        fewest = min(c.held for c in candidates)
        return self._rr.pick([c for c in candidates if c.held == fewest])


class P2cEwma:
    """Power of two random choices: of two random candidates, the one with the
    lower latency EWMA x (in-flight + 1)."""

    name = "p2c-ewma"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, candidates: Sequence[T]) -> T:
        n = len(candidates)
        if n == 1:
            return candidates[0]
        i = int(self._rng.random() * n)
        j = int(self._rng.random() * (n - 1))
        if j >= i:
            j += 1
        a, b = candidates[i], candidates[j]
        return a if a.ewma * (a.held + 1) <= b.ewma * (b.held + 1) else b


BALANCERS = ("round-robin", "weighted", "least-inflight", "p2c-ewma")


def make_balancer(name: str, rng: random.Random) -> Balancer:
    """Build a balancer by its public name; ValueError names the valid ones."""
    if name == "round-robin":
        return RoundRobin()
    if name == "weighted":
        return Weighted()
    if name == "least-inflight":
        return LeastInflight()
    if name == "p2c-ewma":
        return P2cEwma(rng)
    raise ValueError(f"unknown balancer {name!r}; choose one of: {', '.join(BALANCERS)}")
