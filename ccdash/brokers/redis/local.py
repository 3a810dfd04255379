"""What one Redis worker holds locally: entries it has read but not yet handed
out (the buffer), and the leases its consumers hold (by receipt).

Both are pending for this worker in Redis; here they are indexed so that the
hot path (receive, ack) needs no round trip.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import insort
from collections import deque
from collections.abc import Iterator
from typing import Any

from ccdash.brokers.base import Delivery, LeaseInfo, decode_body


def encode_stored(data: bytes, is_json: bool) -> bytes:
    """Body as stored in a stream entry: one tag byte (j/b), then the bytes."""
    return (b"j" if is_json else b"b") + data


def decode_stored(stored: bytes) -> Any:
    """A stream entry's body back to the published value."""
    return decode_body(stored[1:], stored[:1] == b"j")


class Undecodable(ValueError):
    """A stream entry this code did not write and cannot read (the message says why)."""


class Entry:
    """One stream entry pending for this worker. Undecodable if its fields are not
    ones ccdash writes (an id, a tagged body, numeric attempts and time)."""

    __slots__ = (
        "level",
        "prio",
        "eid",
        "mid",
        "data",
        "a",
        "t_ms",
        "count",
        "deadline",
        "holder",
        "receipt",
    )

    def __init__(self, level: bytes, eid: bytes, fields: list[bytes], deadline: float) -> None:
        self.level = level  # stream suffix: b"<prio>" (new) or b"r<prio>" (returned)
        self.prio = int(level.lstrip(b"r"))
        self.eid = eid
        self.count = 1  # entries are read with XREADGROUP once; retries are new entries
        self.deadline = deadline
        self.holder = ""
        self.receipt = ""
        mid = data = b""
        a = t = 0
        it = iter(fields)
        try:
            for k, v in zip(it, it, strict=True):
                if k == b"m":
                    mid = v
                elif k == b"d":
                    data = v
                elif k == b"a":
                    a = int(v)
                elif k == b"t":
                    t = int(v)
            self.mid = mid.decode()
        except ValueError as exc:  # odd field count, not a number, not UTF-8
            raise Undecodable(f"entry fields: {exc}") from None
        if not mid or data[:1] not in (b"j", b"b"):
            raise Undecodable("entry without " + ("a message id" if not mid else "a tagged body"))
        self.data = data
        self.a = a
        self.t_ms = t

    @property
    def attempt(self) -> int:
        """The attempt this delivery is."""
        return self.a + self.count

    @property
    def ack_args(self) -> bytes:
        """(stream suffix, entry id, delivery count) RESP-encoded for the ack script."""
        p, c = self.level, b"%d" % self.count
        return b"$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(p),
            p,
            len(self.eid),
            self.eid,
            len(c),
            c,
        )

    @property
    def key(self) -> tuple[bytes, bytes]:
        """(stream suffix, entry id): where it lives in Redis."""
        return (self.level, self.eid)


Held = tuple[int, str, Entry]  # (position in the caller's list, receipt, entry)


def _by_deadline(entry: Entry) -> float:
    return entry.deadline


class LocalBook:
    """The buffer (per priority, FIFO) and the leases (per receipt and holder)."""

    def __init__(self) -> None:
        self._levels: dict[int, deque[Entry]] = {}
        self._order: list[int] = []  # non-empty priorities, highest first
        self.buffered = 0
        # Entries whose lease ran out while the process was stalled, out of the buffer
        # until the stall is dealt with (insertion-ordered; see `hold`).
        self.stalled: dict[Entry, None] = {}
        # Receipt -> entry, kept in deadline order (see `_place`) apart from the strays.
        self.leases: dict[str, Entry] = {}
        self._stray: dict[str, Entry] = {}  # leases whose deadline broke that order
        self._last_deadline = float("-inf")  # the latest deadline placed in order
        self.by_holder: dict[str, dict[str, Entry]] = {}
        self._seq = itertools.count(1)

    # -- the buffer ---------------------------------------------------------

    def add(self, entry: Entry, *, front: bool = False) -> None:
        """Buffer an entry (front: one handed back, which keeps its place)."""
        level = self._levels.get(entry.prio)
        if level is None:
            level = self._levels[entry.prio] = deque()
            insort(self._order, entry.prio, key=lambda p: -p)
        if front:
            level.appendleft(entry)
        else:
            level.append(entry)
        self.buffered += 1

    def give_back(self, entry: Entry) -> None:
        """A lease handed back unhandled: its entry to the front of the buffer, no longer
        anyone's (an entry with a receipt is one handed out: see keep_buffer)."""
        entry.holder = entry.receipt = ""
        self.add(entry, front=True)

    def pop(self) -> Entry:
        """The next buffered entry: highest priority, then oldest."""
        prio = self._order[0]
        level = self._levels[prio]
        entry = level.popleft()
        if not level:
            del self._levels[prio]
            del self._order[0]
        self.buffered -= 1
        return entry

    def drain_buffer(self) -> list[Entry]:
        """Take every buffered entry out (those held after a stall too)."""
        out = [*self.stalled, *(e for p in self._order for e in self._levels[p])]
        self._levels.clear()
        self._order.clear()
        self.stalled.clear()
        self.buffered = 0
        return out

    def buffered_entries(self) -> Iterator[Entry]:
        """The buffered entries, in no particular order."""
        for level in self._levels.values():
            yield from level

    def hold(self, entry: Entry) -> None:
        """Keep an entry popped from the buffer whose lease ran out in a stall not yet
        dealt with: a peer may have taken it over meanwhile, so no consumer gets it
        until keeping it tells (see `unhold`)."""
        self.stalled[entry] = None

    def unhold(self, entries: list[Entry]) -> list[Entry]:
        """Those of `entries` still held, taken out of the held ones."""
        stalled = self.stalled
        return [e for e in entries if stalled.pop(e, 0) is None]

    # -- leases -------------------------------------------------------------

    def lease(self, entry: Entry, holder: str, offset: float) -> Delivery:
        """Hand a buffered entry to `holder` with a fresh receipt. `offset` turns
        Redis wall-clock seconds into local monotonic time."""
        body = decode_stored(entry.data)  # first: an undecodable body leases nothing
        receipt = f"{entry.prio}/{entry.eid.decode()}/{next(self._seq)}"
        entry.holder = holder
        entry.receipt = receipt
        self.leases[receipt] = entry
        self._place(receipt, entry)
        held = self.by_holder.get(holder)
        if held is None:
            held = self.by_holder[holder] = {}
        held[receipt] = entry
        return Delivery(
            entry.mid,
            body,
            entry.attempt,
            holder,
            receipt,
            entry.prio,
            entry.deadline,
            entry.t_ms / 1000.0 + offset,
        )

    def unlease(self, receipt: Any) -> Entry | None:
        """Remove a lease from both indexes; None if it is not live here."""
        entry = self.leases.pop(receipt, None)
        if entry is not None:
            if self._stray:
                self._stray.pop(receipt, None)
            held = self.by_holder.get(entry.holder)
            if held is not None:
                held.pop(receipt, None)
        return entry

    def holder_receipts(self, holder: str) -> list[str]:
        """Receipts `holder` has."""
        return list(self.by_holder.get(holder, ()))

    def holder_counts(self) -> dict[str, int]:
        """Live leases per holder (empty holders pruned)."""
        for h in [h for h, held in self.by_holder.items() if not held]:
            del self.by_holder[h]
        return {h: len(held) for h, held in self.by_holder.items()}

    def _place(self, receipt: str, entry: Entry) -> None:
        """`entry` was just put at the end of `leases`: in deadline order unless its
        deadline is sooner than one placed before it (then it is a stray)."""
        if entry.deadline >= self._last_deadline:
            self._last_deadline = entry.deadline
        else:
            self._stray[receipt] = entry

    def extended(self, done: list[tuple[str, Entry]], deadline: float) -> None:
        """These live leases' deadlines moved to `deadline`: they go to the end of the
        order (a later deadline than every other, unless the extension was short)."""
        leases, stray = self.leases, self._stray
        for receipt, entry in done:
            del leases[receipt]
            entry.deadline = deadline
            leases[receipt] = entry
            if stray:
                stray.pop(receipt, None)
        if deadline >= self._last_deadline:
            self._last_deadline = deadline
        else:
            for receipt, entry in done:
                stray[receipt] = entry

    def lease_infos(self, limit: int | None) -> list[LeaseInfo]:
        """Live leases, soonest deadline first: the first `limit` of the ordered ones
        merged with the (few) strays, never a sort of them all."""
        stray = self._stray
        ordered: Iterator[Entry] = iter(self.leases.values())
        if stray:
            ordered = (e for r, e in self.leases.items() if r not in stray)
        chosen = itertools.islice(
            heapq.merge(
                itertools.islice(ordered, limit),
                sorted(stray.values(), key=_by_deadline),
                key=_by_deadline,
            ),
            limit,
        )
        return [LeaseInfo(e.mid, e.holder, e.attempt, e.deadline, e.prio) for e in chosen]

    def known(self) -> set[tuple[bytes, bytes]]:
        """(stream suffix, entry id) of everything held here: buffered (or held after
        a stall) or leased."""
        return (
            {e.key for e in self.leases.values()}
            | {e.key for e in self.buffered_entries()}
            | {e.key for e in self.stalled}
        )
