"""The Redis broker's views (fleet counts, this worker's leases, the shared DLQ)
and what it does when Redis lost its state. A mixin of RedisBroker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from redis.exceptions import ResponseError

from ccdash.brokers.base import BrokerError, DeadLetter, LeaseInfo, QueueStats
from ccdash.brokers.redis.flusher import Flusher
from ccdash.brokers.redis.link import evalsha
from ccdash.brokers.redis.views import Snapshot, parse_dead_letters

if TYPE_CHECKING:
    from ccdash.brokers.base import QueueConfig
    from ccdash.brokers.redis.keys import Keys
    from ccdash.brokers.redis.local import LocalBook
    from ccdash.waiters import Waiters

log = logging.getLogger("ccdash.redis")


class QueueState:
    """stats, leases, DLQ, redrive/purge, snapshots and lost state for RedisBroker."""

    book: LocalBook
    config: QueueConfig
    flusher: Flusher
    keys: Keys
    snap: Snapshot
    offset: float
    lost_state_events: int
    _closed: bool
    _dead: list[DeadLetter]
    _dlq_version: int
    _last_lost: float
    _room_waiters: Waiters
    _tasks: list[asyncio.Task[None]]

    if TYPE_CHECKING:

        def _check_open(self) -> None: ...

    def stats(self) -> QueueStats:
        """Fleet-wide counts as of the last read, plus this process's writes since."""
        s = self.snap
        pub = self.flusher.pending_pub()
        acked = self.flusher.pending_ack()
        ready, in_flight = s.ready + pub, s.in_flight - acked
        if in_flight < 0:
            # A read taken (on the write connection) before the reader's fetch on its
            # own connection, and applied after it: what we fetched and acked since
            # was still ready in that read. Take the acks from there, as outstanding()
            # does, instead of showing them as ready until the next read.
            ready, in_flight = max(0, ready + in_flight), 0
        return QueueStats(
            ready=ready,
            delayed=s.delayed,
            in_flight=in_flight,
            dead=s.dead,
            published=s.published + pub,
            acked=s.acked + acked,
            dead_lettered=s.dead_lettered,
            redelivered=s.redelivered,
            capacity=self.config.capacity,
        )

    def oldest_ready_published_at(self) -> float | None:
        """When the oldest ready message (fleet-wide) was published, on this broker's
        clock, as of the last stats read."""
        at = self.snap.oldest_ready
        return None if at is None else at + self.offset

    def outstanding(self) -> int:
        """Messages not yet acked or dead-lettered, fleet-wide (as of the last read,
        plus this process's writes since)."""
        s = self.snap
        return (
            max(0, s.ready + s.delayed + s.in_flight - self.flusher.pending_ack())
            + self.flusher.pending_pub()
        )

    def leases(self, limit: int | None = None) -> list[LeaseInfo]:
        """This worker's live leases, soonest deadline first."""
        return self.book.lease_infos(limit)

    def holder_counts(self) -> dict[str, int]:
        """This worker's live leases per holder."""
        return self.book.holder_counts()

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The shared DLQ, newest first (the latest 200, refreshed as it changes)."""
        return self._dead[:limit] if limit is not None else list(self._dead)

    async def redrive(self, ids: Sequence[str] | None = None) -> int:
        """Dead messages back to their priority's stream, attempts reset."""
        return await self._dlq("redrive", ids)

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        """Delete dead messages for good."""
        return await self._dlq("purge", ids)

    async def _dlq(self, script: str, ids: Sequence[str] | None) -> int:
        n = 0
        if ids is not None:
            if ids:
                n, _ = await self.flusher.call(evalsha(script, self.keys.prefix, 500, "+", *ids))
        else:
            last = await self.flusher.call(("XREVRANGE", self.keys.dead, "+", "-", "COUNT", 1))
            if last:
                while True:
                    moved, more = await self.flusher.call(
                        evalsha(script, self.keys.prefix, 500, last[0][0])
                    )
                    n += moved
                    if not more:
                        break
        await self.refresh()
        return int(n)

    async def refresh(self) -> None:
        """Read the fleet's counts and the DLQ now."""
        self._check_open()
        await self.flusher.call(evalsha("stats", self.keys.prefix))
        await self._refresh_dead()

    async def _refresh_dead(self) -> None:
        version = self.snap.dlq_version
        raw = await self.flusher.call(("XREVRANGE", self.keys.dead, "+", "-", "COUNT", 200))
        self._dead = parse_dead_letters(raw, self.offset)
        self._dlq_version = version

    # -- callbacks from the tasks -------------------------------------------

    def _on_snapshot(self, snap: Snapshot) -> None:
        self.snap = snap
        if snap.redis_now:
            self.offset = snap.taken_at - snap.redis_now
        if snap.dlq_version != self._dlq_version and not self._closed:
            self._dlq_version = snap.dlq_version
            task = asyncio.get_running_loop().create_task(self._refresh_dead_quietly())
            self._tasks.append(task)
            task.add_done_callback(self._tasks.remove)
        self._room_waiters.wake_all()

    async def _refresh_dead_quietly(self) -> None:
        try:
            await self._refresh_dead()
        except (BrokerError, ResponseError):
            self._dlq_version = -1  # try again with the next snapshot

    def on_lost_state(self, *, leases: bool = True) -> None:
        """Redis answered NOGROUP: it lost our group (restart without persistence); our
        leases went with it. `leases` False: the queue's marker was found gone after a
        reconnect, and leases taken since are the new Redis's: they stay."""
        now = time.monotonic()
        if now - self._last_lost < 1.0:
            return  # one report and one re-creation per incident, not a loop
        self._last_lost = now
        self.lost_state_events += 1
        dropped = 0
        if leases:  # the buffer, the entries held after a stall, the consumers' leases
            dropped = len(self.book.drain_buffer()) + len(self.book.leases)
            for r in list(self.book.leases):
                self.book.unlease(r)
        log.error(
            "Redis lost the queue's consumer group (restarted without persistence?): "
            "re-creating it; %d local leases dropped",
            dropped,
        )
        prios = sorted({p for p, _, _ in self.flusher.outbox} | {0})
        self.flusher.fire(evalsha("recover", self.keys.prefix, *prios))
        vt = str(self.config.visibility_timeout)  # the marker again (presence checks it)
        self.flusher.fire(("HSETNX", self.keys.config, "visibility_timeout", vt))
