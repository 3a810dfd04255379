"""The memory broker's records: a message, a dedup entry, and a priority level's
ready messages (fresh ones in publish order, returned ones by original sequence)."""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

from ccdash.brokers.types import HistoryEntry, Receipt

INF = float("inf")


class Msg:
    """One message's record. `deadline` is the lease deadline while leased and
    the visible-again time while delayed (a message is never both).

    Built field by field, with no __init__: `Msg()` then the stores (on CPython 3.11 a
    Python __init__ costs more than the stores, and `object.__new__(Msg)` more than the
    bare call). Publishing sets only what a ready message needs (the first six
    fields); each other field is set when it first means something, so publish
    stores no placeholders: `attempt` when the message leaves its level's fresh
    deque (it is 0 until then: see `Level.pop` and `attempts`), `deadline` and
    `holder` with a lease, `receipt` only for a lease kept out of grant order
    (`_stray`; `_leases` is keyed by it), `history` once a delivery failed (see
    `failures`).
    """

    __slots__ = (
        "id",
        "data",
        "how",
        "priority",
        "seq",
        "published_at",
        "attempt",
        "deadline",
        "holder",
        "receipt",
        "history",
    )

    id: str
    data: Any  # the body as codec.keep_body keeps it...
    how: int  # ...and how (codec.KEPT_*)
    priority: int
    seq: int
    published_at: float
    attempt: int
    deadline: float
    holder: str
    receipt: Receipt
    history: list[HistoryEntry] | None


PUBLISHED_FIELDS = Msg.__slots__[:6]  # what publish sets (and a test checks)


def attempts(msg: Msg) -> int:
    """Deliveries of `msg` so far (0 while it has never left the fresh deque)."""
    return getattr(msg, "attempt", 0)


def failures(msg: Msg) -> list[HistoryEntry] | None:
    """How the failed deliveries of `msg` ended (None: none failed yet)."""
    return getattr(msg, "history", None)


class Dedup:
    __slots__ = ("key", "message_id", "deadline")

    def __init__(self, key: str, message_id: str, deadline: float) -> None:
        self.key = key
        self.message_id = message_id
        self.deadline = deadline


class Level:
    """Ready messages of one priority: fresh ones in publish order, and returned
    ones (nacked, expired, released) in a heap by their original sequence so a
    retried message keeps its place ahead of newer ones."""

    __slots__ = ("fresh", "returned")

    def __init__(self) -> None:
        self.fresh: deque[Msg] = deque()
        self.returned: list[tuple[int, Msg]] = []

    def pop(self) -> Msg:
        """The oldest message by sequence, fresh or returned (the level is not empty)."""
        returned = self.returned
        if returned and (not self.fresh or returned[0][0] < self.fresh[0].seq):
            return heapq.heappop(returned)[1]
        msg = self.fresh.popleft()
        msg.attempt = 0  # fresh: never delivered, or redriven (see Msg)
        return msg


def by_deadline(msg: Msg) -> float:
    return msg.deadline
