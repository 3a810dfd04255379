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
    the visible-again time while delayed (a message is never both)."""

    __slots__ = (
        "id",
        "data",
        "how",
        "priority",
        "seq",
        "attempt",
        "deadline",
        "holder",
        "receipt",
        "published_at",
        "history",
    )

    def __init__(self, mid: str, data: Any, how: int, priority: int, seq: int, now: float) -> None:
        self.id = mid
        self.data: Any = data  # the body as codec.keep_body keeps it...
        self.how = how  # ...and how (codec.KEPT_*)
        self.priority = priority
        self.seq = seq
        self.attempt = 0
        self.deadline = 0.0
        self.holder = ""
        self.receipt: Receipt = 0
        self.published_at = now
        self.history: list[HistoryEntry] | None = None  # only once a delivery failed


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
        return self.fresh.popleft()


def by_deadline(msg: Msg) -> float:
    return msg.deadline
