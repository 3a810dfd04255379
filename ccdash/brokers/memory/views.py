"""The memory broker's views for operators (stats, where a message is, leases,
holders, the DLQ) and its DLQ actions (redrive, purge)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence

from ccdash.brokers.memory.records import Msg, attempts, by_deadline, failures
from ccdash.brokers.memory.state import MemoryState
from ccdash.brokers.types import DeadLetter, HistoryEntry, LeaseInfo, MessageWhere, QueueStats


class MemoryViews(MemoryState):
    """What operators see of a memory broker, and the DLQ actions."""

    def stats(self) -> QueueStats:
        """Counts now, and totals."""
        self._reap(self.clock.now())
        return QueueStats(
            ready=self._ready,
            delayed=len(self._delayed),
            in_flight=len(self._leases) + len(self._stray),
            dead=len(self._dead),
            published=self.published,
            acked=self.acked,
            dead_lettered=self.dead_lettered,
            redelivered=self.redelivered,
            capacity=self.config.capacity,
        )

    def locate(self, message_id: str) -> MessageWhere | None:
        """Where a message is now: a scan of the leases, the ready levels and the delayed
        retries (the DLQ by key); O(messages held), for an operator's look-up."""
        dead = self._dead.get(message_id)
        if dead is not None:
            msg, letter = dead
            return self._where(msg, "dead", letter.history)
        for state, msgs in (
            ("leased", [*self._leases.values(), *self._stray.values()]),
            (
                "ready",
                [
                    m
                    for lv in self._levels.values()
                    for m in (*lv.fresh, *(r[1] for r in lv.returned))
                ],
            ),
            ("delayed", self._delayed.values()),
        ):
            for msg in msgs:
                if msg.id == message_id:
                    return self._where(msg, state, tuple(failures(msg) or ()))
        return None

    @staticmethod
    def _where(msg: Msg, state: str, history: tuple[HistoryEntry, ...]) -> MessageWhere:
        return MessageWhere(
            msg.id,
            state,
            msg.priority,
            attempts(msg),
            msg.holder if state == "leased" else "",
            msg.deadline if state in ("leased", "delayed") else 0.0,
            msg.published_at,
            history,
        )

    def oldest_ready_published_at(self) -> float | None:
        """The earliest publish time among the heads of the priority levels (each level
        keeps publish order, so its head is its oldest): O(levels)."""
        oldest: float | None = None
        for level in self._levels.values():
            heads = ([level.fresh[0]] if level.fresh else []) + (
                [level.returned[0][1]] if level.returned else []
            )
            for msg in heads:
                if oldest is None or msg.published_at < oldest:
                    oldest = msg.published_at
        return oldest

    def leases(self, limit: int | None = None) -> list[LeaseInfo]:
        """Live leases, soonest deadline first."""
        self._reap(self.clock.now())
        # _leases is already in deadline order: only the strays need sorting.
        ordered = itertools.islice(self._leases.values(), limit)
        stray = sorted(self._stray.values(), key=by_deadline)
        chosen = itertools.islice(heapq.merge(ordered, stray, key=by_deadline), limit)
        return [LeaseInfo(m.id, m.holder, m.attempt, m.deadline, m.priority) for m in chosen]

    def holder_counts(self) -> dict[str, int]:
        """Live leases per holder."""
        self._reap(self.clock.now())
        return {h: len(held) for h, held in self._by_holder.items() if held}

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The DLQ, newest first."""
        self._reap(self.clock.now())
        items = reversed(self._dead.values())
        return [d for _, d in itertools.islice(items, limit)]

    async def redrive(self, ids: Sequence[str] | None = None) -> int:
        """Back to the queue with attempts reset, at the tail of their priority."""
        self._reap(self.clock.now())  # a lease that just expired on its last attempt is dead
        chosen = list(self._dead) if ids is None else [i for i in ids if i in self._dead]
        for mid in chosen:
            msg, _ = self._dead.pop(mid)
            msg.attempt = 0
            msg.history = None
            msg.seq = next(self._seq)
            level = self._levels.get(msg.priority)
            if level is None:
                level = self._new_level(msg.priority)
            level.fresh.append(msg)
            self._ready += 1
        if chosen:
            self._readers.wake_all()
        return len(chosen)

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        """Delete dead messages for good."""
        self._reap(self.clock.now())
        chosen = list(self._dead) if ids is None else [i for i in ids if i in self._dead]
        for mid in chosen:
            del self._dead[mid]
        self._purged += len(chosen)
        if chosen and self._writers:
            self._writers.wake()
        return len(chosen)
