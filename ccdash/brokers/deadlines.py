"""Deadline-ordered buckets: find what expired in O(k), never by a full scan.

Items are grouped in buckets of `resolution` seconds; a small heap holds one
entry per *bucket* (not per item), so adding an item is one or two dict
operations. Inside a bucket, items keep insertion order; since deadlines are
mostly granted in order (one visibility timeout for everyone), the expired
ones sit at the front and popping stops at the first one still alive. A bucket
that received a deadline earlier than one it already held (a jittered retry
delay, a short `extend`) is sorted once, when it is next looked into.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from math import floor
from typing import Generic, Protocol, TypeVar


class HasDeadline(Protocol):
    """Anything with a mutable `deadline` (monotonic seconds)."""

    deadline: float


T = TypeVar("T", bound=HasDeadline)


class _Bucket(dict):  # type: ignore[type-arg]
    """Items of one slot by key; `top` is the latest deadline added, `mixed` that
    some item was added after a later one (so insertion order is not deadline order)."""

    __slots__ = ("top", "mixed")

    def __init__(self, top: float) -> None:
        self.top = top
        self.mixed = False

    def sort(self) -> None:
        """Reorder by deadline so the due items are at the front again."""
        items = sorted(self.items(), key=lambda kv: kv[1].deadline)
        self.clear()
        self.update(items)
        self.mixed = False


class DeadlineBuckets(Generic[T]):
    """A set of items keyed by a hashable key, popped in deadline order."""

    __slots__ = ("_res", "_buckets", "_slots", "_len")

    def __init__(self, resolution: float = 0.05) -> None:
        self._res = resolution
        self._buckets: dict[int, _Bucket] = {}
        self._slots: list[int] = []  # heap of bucket numbers present in _buckets
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def values(self) -> list[T]:
        """Every item, in no particular order (a scan: for look-ups by a person)."""
        return [item for bucket in self._buckets.values() for item in bucket.values()]

    def add(self, key: Hashable, item: T) -> None:
        """Track `item` under `key` until its `deadline` (set it before adding)."""
        deadline = item.deadline
        slot = floor(deadline / self._res)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = _Bucket(deadline)
            heapq.heappush(self._slots, slot)
        elif deadline >= bucket.top:
            bucket.top = deadline
        else:
            bucket.mixed = True
        bucket[key] = item
        self._len += 1

    def remove(self, key: Hashable, deadline: float) -> T | None:
        """Stop tracking `key` (added with `deadline`); return its item if it was there."""
        bucket = self._buckets.get(floor(deadline / self._res))
        if bucket is None:
            return None
        item: T | None = bucket.pop(key, None)
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
        # Compare slots, not slot * resolution: an item is in slot floor(d / res), and
        # d <= now implies floor(d / res) <= floor(now / res) exactly, in floats too.
        now_slot = floor(now / self._res)
        while slots and slots[0] <= now_slot:
            slot = slots[0]
            bucket = buckets[slot]
            if slot < now_slot:  # every deadline in it is < the start of now's slot
                out.extend(bucket.values())
            else:  # now's own slot: only its expired front is due
                if bucket.mixed:
                    bucket.sort()
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
        """The earliest deadline still tracked."""
        slots = self._slots
        buckets = self._buckets
        while slots:
            bucket = buckets[slots[0]]
            if bucket:
                if bucket.mixed:
                    bucket.sort()
                deadline: float = next(iter(bucket.values())).deadline
                return deadline
            del buckets[heapq.heappop(slots)]
        return None
