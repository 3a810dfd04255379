"""Load balancers: which consumer with room gets the next delivery.

Each picks among `candidates` (consumers that have room for one more
delivery, in creation order): a `Candidates` set the dispatcher keeps up to date
as room changes, so a pick costs O(log n) at most (O(1) for p2c-ewma), never a
scan of the pool. All randomness comes from the engine's one seeded generator.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar


class Target(Protocol):
    """What a balancer needs to know about a consumer."""

    ordinal: int  # creation order, unique
    weight: int
    held: int  # deliveries held now (buffered + in the handler)
    ewma: float  # smoothed handler latency, seconds


T = TypeVar("T", bound=Target)


class Candidates(Generic[T]):
    """Consumers with room, in creation order, kept up to date as room changes (never
    rebuilt per pick): O(log n) to add or remove one; by position in O(1); grouped by
    what each holds while a balancer asks for that (`track_held`, least-inflight)."""

    __slots__ = ("ords", "by_ord", "held_of", "by_held", "on_add", "track_held")

    def __init__(self) -> None:
        self.ords: list[int] = []  # sorted
        self.by_ord: dict[int, T] = {}
        self.held_of: dict[int, int] = {}  # the `held` each is filed under (tracking)
        self.by_held: dict[int, list[int]] = {}  # held -> sorted ordinals (tracking)
        self.on_add: Callable[[T], None] | None = None
        self.track_held = False

    def __len__(self) -> int:
        return len(self.ords)

    def __getitem__(self, i: int) -> T:
        return self.by_ord[self.ords[i]]

    def __contains__(self, c: T) -> bool:
        return c.ordinal in self.by_ord

    def members(self) -> list[T]:
        """All of them, in creation order."""
        return [self.by_ord[o] for o in self.ords]

    def follow_held(self, on: bool) -> None:
        """Keep (or stop keeping) the members grouped by what each holds."""
        self.track_held = on
        self.held_of.clear()
        self.by_held.clear()
        if on:
            for c in self.members():
                self._file(c.ordinal, c.held)

    def put(self, c: T) -> None:
        """Add c, or file it again under what it holds now."""
        o = c.ordinal
        if o not in self.by_ord:
            insort(self.ords, o)
            self.by_ord[o] = c
            if self.track_held:
                self._file(o, c.held)
            if self.on_add is not None:
                self.on_add(c)
        elif self.track_held:
            old = self.held_of[o]
            if old != c.held:
                self._unfile(o, old)
                self._file(o, c.held)

    def discard(self, c: T) -> None:
        """Remove c if it is here."""
        o = c.ordinal
        if self.by_ord.pop(o, None) is None:
            return
        del self.ords[bisect_left(self.ords, o)]
        if self.track_held:
            self._unfile(o, self.held_of.pop(o))

    def _file(self, o: int, held: int) -> None:
        self.held_of[o] = held
        group = self.by_held.get(held)
        if group is None:
            self.by_held[held] = [o]
        else:
            insort(group, o)

    def _unfile(self, o: int, held: int) -> None:
        group = self.by_held[held]
        del group[bisect_left(group, o)]
        if not group:
            del self.by_held[held]

    @classmethod
    def of(cls, consumers: Sequence[T]) -> Candidates[T]:
        """A set of these consumers (for a one-off choice)."""
        out: Candidates[T] = cls()
        for c in consumers:
            out.put(c)
        return out


class Balancer(Protocol):
    """Chooses one of the candidates (never empty)."""

    name: str

    def pick(self, candidates: Candidates[T]) -> T: ...

    def attach(self, candidates: Candidates[T]) -> None:
        """Follow this set as consumers join it (balancers that keep state per member)."""


def _after(ords: list[int], last: int) -> int:
    """The first ordinal above `last`, else the first (ords sorted, not empty)."""
    i = bisect_right(ords, last)
    return ords[i] if i < len(ords) else ords[0]


class RoundRobin:
    """Each consumer in turn, skipping those without room."""

    name = "round-robin"

    def __init__(self) -> None:
        self._last = -1

    def attach(self, candidates: Candidates[T]) -> None:
        """Nothing to follow."""
        candidates.follow_held(False)
        candidates.on_add = None

    def pick(self, candidates: Candidates[T]) -> T:
        self._last = _after(candidates.ords, self._last)
        return candidates.by_ord[self._last]


class Weighted:
    """Smooth weighted round-robin by stride scheduling: each consumer's pass advances
    by 1/weight when picked and the lowest pass goes next, so shares follow the weights,
    interleaved rather than in bursts; a consumer (re)joining starts at the current
    pass, never behind it. O(log n) per pick (a heap)."""

    name = "weighted"

    def __init__(self) -> None:
        self._pass: dict[int, float] = {}
        self._heap: list[tuple[float, int]] = []
        self._vtime = 0.0

    def attach(self, candidates: Candidates[T]) -> None:
        candidates.follow_held(False)
        candidates.on_add = self._joined
        for c in candidates.members():
            self._joined(c)

    def _joined(self, c: Target) -> None:
        o = c.ordinal
        p = self._pass.get(o)
        if p is None or p < self._vtime:
            p = self._pass[o] = self._vtime
            heapq.heappush(self._heap, (p, o))

    def pick(self, candidates: Candidates[T]) -> T:
        heap, passes, by_ord = self._heap, self._pass, candidates.by_ord
        while heap:
            p, o = heap[0]
            if o in by_ord and passes.get(o) == p:
                break
            heapq.heappop(heap)  # gone, or a stale entry
            if o not in by_ord and passes.get(o) == p:
                del passes[o]  # it starts afresh (at the current pass) when it joins again
        else:  # nobody followed yet (a one-off set): start them all now
            for c in candidates.members():
                self._joined(c)
            p, o = heap[0]
        heapq.heappop(heap)
        chosen = by_ord[o]
        self._vtime = p
        w = max(chosen.weight, 0)
        nxt = p + 1.0 / w if w else float("inf")
        passes[o] = nxt
        heapq.heappush(heap, (nxt, o))
        return chosen


class LeastInflight:
    """The consumer holding the fewest deliveries; ties go round-robin."""

    name = "least-inflight"

    def __init__(self) -> None:
        self._last = -1

    def attach(self, candidates: Candidates[T]) -> None:
        """Have the set grouped by what each holds."""
        candidates.follow_held(True)
        candidates.on_add = None

    def pick(self, candidates: Candidates[T]) -> T:
        # Distinct `held` values are bounded by the prefetch, not the pool size.
        self._last = _after(candidates.by_held[min(candidates.by_held)], self._last)
        return candidates.by_ord[self._last]


class P2cEwma:
    """Power of two random choices: of two random candidates, the one with the
    lower latency EWMA x (in-flight + 1)."""

    name = "p2c-ewma"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def attach(self, candidates: Candidates[T]) -> None:
        """Nothing to follow."""
        candidates.follow_held(False)
        candidates.on_add = None

    def pick(self, candidates: Candidates[T]) -> T:
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
