"""Deadline-ordered buckets: find what expired in O(k), never by a full scan.

Items are grouped in buckets of `resolution` seconds; a small heap holds one
entry per *bucket* (not per item), so adding an item is one or two dict
operations. Inside a bucket, items keep insertion order; since deadlines are
mostly granted in order (one visibility timeout for everyone), the expired
ones sit at the front and popping stops at the first one still alive.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar


class HasDeadline(Protocol):
    """Anything with a mutable `deadline` (monotonic seconds)."""

    deadline: float


T = TypeVar("T", bound=HasDeadline)


class DeadlineBuckets(Generic[T]):
    """A set of items keyed by a hashable key, popped in deadline order."""

    __slots__ = ("_res", "_buckets", "_slots", "_len")

    def __init__(self, resolution: float = 0.05) -> None:
        self._res = resolution
        self._buckets: dict[int, dict[Hashable, T]] = {}
        self._slots: list[int] = []  # heap of bucket numbers present in _buckets
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def add(self, key: Hashable, item: T) -> None:
        """Track `item` under `key` until its `deadline` (set it before adding)."""
        slot = math.floor(item.deadline / self._res)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = {}
            heapq.heappush(self._slots, slot)
        bucket[key] = item
        self._len += 1

    def remove(self, key: Hashable, deadline: float) -> T | None:
        """Stop tracking `key` (added with `deadline`); return its item if it was there."""
        slot = math.floor(deadline / self._res)
        bucket = self._buckets.get(slot)
        if bucket is None:
            return None
        item = bucket.pop(key, None)
        if item is not None:
            self._len -= 1
            # An empty bucket stays until pop_expired reaches its slot: removing it
            # from the heap here would cost O(n).
        return item

    def pop_expired(self, now: float) -> list[T]:
        """Remove and return every item whose deadline is <= now, earliest bucket first."""
        out: list[T] = []
        slots = self._slots
        buckets = self._buckets
        while slots and slots[0] * self._res <= now:
            slot = slots[0]
            bucket = buckets[slot]
            if (slot + 1) * self._res <= now:
                out.extend(bucket.values())
            else:
                # The bucket now is only partly due: take its expired front.
                done = []
                for key, item in bucket.items():
                    if item.deadline > now:
                        break
                    done.append(key)
                for key in done:
                    out.append(bucket.pop(key))
                if bucket:
                    break
            heapq.heappop(slots)
            del buckets[slot]
        self._len -= len(out)
        return out

    def next_deadline(self) -> float | None:
        """The earliest deadline still tracked (at bucket precision at worst)."""
        slots = self._slots
        buckets = self._buckets
        while slots:
            bucket = buckets[slots[0]]
            if bucket:
                first = next(iter(bucket.values()))
                # Out-of-order inserts are possible; never report later than the bucket start
                # would allow us to miss: the bucket start is a safe lower bound.
                return min(first.deadline, (slots[0] + 1) * self._res)
            del buckets[heapq.heappop(slots)]
        return None
