"""Load balancers: which consumer with room gets the next delivery.

Each picks among `candidates` (consumers that have room for one more
delivery, in creation order): a `Candidates` set the dispatcher keeps up to date
as room changes, so a pick costs O(log n) at most (O(1) for p2c-ewma; weighted adds
a look per distinct weight), never a scan of the pool. All randomness comes from
the engine's one seeded generator.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar


class Target(Protocol):
    """What a balancer needs to know about a consumer."""

    ordinal: int  # creation order, unique
    weight: int
    held: int  # deliveries held now (buffered + in the handler)

    @property
    def ewma(self) -> float:
        """Smoothed handler latency, seconds."""


T = TypeVar("T", bound=Target)


class Candidates(Generic[T]):
    """Consumers with room, in creation order, kept up to date as room changes (never
    rebuilt per pick): O(log n) to add or remove one; by position in O(1); grouped by
    what each holds while a balancer asks for that (`track_held`, least-inflight)."""

    __slots__ = ("ords", "by_ord", "held_of", "by_held", "on_put", "on_discard", "track_held")

    def __init__(self) -> None:
        self.ords: list[int] = []  # sorted
        self.by_ord: dict[int, T] = {}
        self.held_of: dict[int, int] = {}  # the `held` each is filed under (tracking)
        self.by_held: dict[int, list[int]] = {}  # held -> sorted ordinals (tracking)
        # A balancer that keeps state per member hears of every put and removal.
        self.on_put: Callable[[T], None] | None = None
        self.on_discard: Callable[[T], None] | None = None
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
        elif self.track_held:
            old = self.held_of[o]
            if old != c.held:
                self._unfile(o, old)
                self._file(o, c.held)
        if self.on_put is not None:
            self.on_put(c)

    def discard(self, c: T) -> None:
        """Remove c if it is here."""
        o = c.ordinal
        if self.by_ord.pop(o, None) is None:
            return
        del self.ords[bisect_left(self.ords, o)]
        if self.track_held:
            self._unfile(o, self.held_of.pop(o))
        if self.on_discard is not None:
            self.on_discard(c)

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
        """Follow this set as consumers join and leave it (balancers that keep state
        per member), or unhook whoever followed it before."""


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
        candidates.on_put = candidates.on_discard = None

    def pick(self, candidates: Candidates[T]) -> T:
        self._last = _after(candidates.ords, self._last)
        return candidates.by_ord[self._last]


class Weighted:
    """Smooth weighted round-robin (nginx's): at each pick every candidate's current
    weight grows by its weight, the highest goes (the oldest on a tie) and gives back
    the candidates' total, so weights 5, 1, 1 give a a b a c a a. One without room is
    out of the turn: its current weight is kept as it was, and the others share among
    themselves by weight. Weight 0 gets work only when nobody with a weight has room.

    Never a scan: a current weight is `base + weight x picks`, so among equal weights
    the order is that of `base`, kept in a heap per distinct weight; a pick compares
    the heaps' heads: O(distinct weights + log n). The dispatcher files a consumer
    again when its weight is set (`Dispatcher.set_weight`), so it counts from the next
    pick; a weight changed behind its back is seen when it reaches its heap's head."""

    name = "weighted"

    _AWAY = 4096  # current weights kept for consumers without room (oldest dropped)

    def __init__(self) -> None:
        self._set: Candidates[Any] | None = None
        self._picks = 0
        self._total = 0  # the members' weights (those filed; 0 for weight <= 0)
        self._weight: dict[int, int] = {}  # member -> the weight it is filed under
        self._entry: dict[int, tuple[int, int]] = {}  # member -> its live (-base, ordinal)
        self._heaps: dict[int, list[tuple[int, int]]] = {}  # weight -> entries (some stale)
        self._away: dict[int, int] = {}  # ordinal -> current weight when it left
        self._stale = 0  # entries in the heaps beyond the live ones

    def attach(self, candidates: Candidates[T]) -> None:
        """Follow this set: members join and leave as it changes."""
        candidates.follow_held(False)
        if self._set is not None and self._set is not candidates:
            for o in list(self._weight):
                self._leave(o)
        self._set = candidates
        candidates.on_put = self._put
        candidates.on_discard = self._discarded
        for c in candidates.members():
            self._put(c)

    def _put(self, c: Target) -> None:
        """c has room: it joins with the current weight it left with (0 if new), or is
        filed again if its weight changed."""
        o, w = c.ordinal, c.weight
        was = self._weight.get(o)
        if was == w:
            return
        if was is None:
            cur = self._away.pop(o, 0)
        else:
            cur = -self._entry[o][0] + was * self._picks
            self._total -= max(was, 0)
            self._stale += 1
        self._weight[o] = w
        self._total += max(w, 0)
        entry = self._entry[o] = (w * self._picks - cur, o)
        heapq.heappush(self._heaps.setdefault(w, []), entry)

    def _discarded(self, c: Target) -> None:
        self._leave(c.ordinal)

    def _leave(self, o: int) -> None:
        """o has no room: keep its current weight until it has room again."""
        w = self._weight.pop(o, None)
        if w is None:
            return
        self._total -= max(w, 0)
        away = self._away
        away[o] = -self._entry.pop(o)[0] + w * self._picks
        if len(away) > self._AWAY:
            del away[next(iter(away))]
        self._stale += 1

    def _head(self, heap: list[tuple[int, int]]) -> tuple[int, int] | None:
        """The live entry at the head of a heap, the stale ones above it dropped."""
        entry = self._entry
        while heap:
            top = heap[0]
            if entry.get(top[1]) is top:
                return top
            heapq.heappop(heap)
            self._stale -= 1
        return None

    def pick(self, candidates: Candidates[T]) -> T:
        if candidates is not self._set:  # a one-off set nobody attached
            self.attach(candidates)
        by_ord, entry, heaps = candidates.by_ord, self._entry, self._heaps
        t = self._picks + 1
        while True:
            best: tuple[int, int] | None = None  # the highest current weight, oldest first
            best_w = best_v = 0
            idle: tuple[int, int] | None = None  # weight <= 0: only if nobody else
            moved: T | None = None
            empty: list[int] | None = None
            for w, heap in heaps.items():
                top = heap[0] if heap else None
                if top is None or entry.get(top[1]) is not top:
                    top = self._head(heap)
                    if top is None:  # nobody of this weight has room
                        empty = [w] if empty is None else [*empty, w]
                        continue
                o = top[1]
                if by_ord[o].weight != w:  # changed since it was filed
                    moved = by_ord[o]
                    break
                if w <= 0:
                    if idle is None or top < idle:
                        idle = top
                    continue
                v = w * t - top[0]
                if best is None or v > best_v or (v == best_v and o < best[1]):
                    best, best_w, best_v = top, w, v
            for w in empty or ():
                del heaps[w]
            if moved is None:
                break
            self._put(moved)
        if best is None:
            assert idle is not None, "pick from an empty set"
            best, best_w = idle, self._weight[idle[1]]
        self._picks = t
        heap = heaps[best_w]
        heapq.heappop(heap)
        o = best[1]
        new = entry[o] = (best[0] + max(self._total, 1), o)
        heapq.heappush(heap, new)
        if self._stale > 2 * len(entry) + 64:
            self._compact()
        return by_ord[o]

    def _compact(self) -> None:
        """Rebuild the heaps from the live entries (stale ones had piled up)."""
        heaps: dict[int, list[tuple[int, int]]] = {}
        for o, e in self._entry.items():
            heaps.setdefault(self._weight[o], []).append(e)
        for h in heaps.values():
            heapq.heapify(h)
        self._heaps, self._stale = heaps, 0


class LeastInflight:
    """The consumer holding the fewest deliveries; ties go round-robin."""

    name = "least-inflight"

    def __init__(self) -> None:
        self._last = -1

    def attach(self, candidates: Candidates[T]) -> None:
        """Have the set grouped by what each holds."""
        candidates.follow_held(True)
        candidates.on_put = candidates.on_discard = None

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
        candidates.on_put = candidates.on_discard = None

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
