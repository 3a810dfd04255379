"""The Redis broker's write path: one task sends everything in batches.

Publishes and acks are group-committed: callers queue them and go on; one
round trip carries up to thousands of them (plus any other queued operation
and, when due, a stats read). That is what makes throughput on Redis: batch
reads and batch acks. On a connection error the batch stays queued and is
sent again after a jittered backoff; publish batches are numbered, so a
batch that reached Redis before the connection broke is not added twice.

The stats read rides in the same pipeline after the writes, so a snapshot
always includes every local write sent before it; `Pending` counts the local
writes a snapshot does not include yet, which keeps `stats()` exact for this
process between snapshots.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ccdash.backoff import Backoff
from ccdash.brokers.base import BrokerError
from ccdash.brokers.redis.link import (
    LinkDown,
    Raw,
    RedisLink,
    Unsendable,
    encode_command,
    evalsha,
    is_nogroup,
)
from ccdash.brokers.redis.marks import Op, past_mark
from ccdash.brokers.redis.refusals import Refusals, fail_unstored, stored_nothing
from ccdash.brokers.redis.scripts.delivery import REGISTER_EVERY
from ccdash.brokers.redis.views import Snapshot, parse_stats
from ccdash.waiters import Waiters

log = logging.getLogger("ccdash.redis")

PUBLISH_CHUNK = 1000  # messages per publish script call
ACK_CHUNK = 2000  # acks per ack script call
STATS_EVERY = 0.05  # seconds: at most this stale while writes flow


class Flusher:
    """Queues of writes and the task that sends them."""

    def __init__(
        self,
        link: RedisLink,
        prefix: str,
        *,
        worker: str,
        vt_ms: int,
        on_lost_state: Callable[[], Any],
        on_snapshot: Callable[[Snapshot], None],
        backoff: Backoff,
        publisher: str,
        stall_after: float = float("inf"),
    ) -> None:
        self.link = link
        self.prefix = prefix
        self.worker = worker
        self.vt_ms = vt_ms
        self.on_lost_state = on_lost_state
        self.on_snapshot = on_snapshot
        self.backoff = backoff
        # Queued writes, their script arguments already RESP-encoded (see `_stage`).
        # (priority, 4 args, the publisher's future or None if nobody awaits it)
        self.outbox: deque[tuple[int, bytes, asyncio.Future[None] | None]] = deque()
        self.acks: deque[bytes] = deque()  # 3 args each
        self.acks_since: float | None = None  # when the oldest ack in `acks` was taken
        self.ops: deque[Op] = deque()
        self.want_stats = True
        self.last_stats = 0.0
        # Local writes a snapshot does not include yet (sent after it, or queued).
        self.sent_pub = 0
        self.sent_ack = 0
        self.late_rejected = 0  # group-committed acks Redis refused (lease lost meanwhile)
        self.down_since: float | None = None
        self.recovered_at = 0.0  # monotonic time the connection last came back
        # Heartbeat rounds send a batch at least every third of a TTL: a gap longer
        # than this between successful round trips was an outage (Redis paused, a
        # stalled network or process), as good as a reconnect for judging peers.
        self.stall_after = stall_after
        self.last_ok = 0.0
        self.stalled_at = 0.0  # monotonic time such a gap last ended
        self.retrying = False
        self.refusals = Refusals()  # publishes Redis refused (out of memory, read-only)
        self._kick = asyncio.Event()
        self._lock = asyncio.Lock()  # one round trip at a time: the task's or send_now's
        self._parked = False  # the flusher task waits for work
        self._backoff_next = False
        self._idle = asyncio.Event()
        self._idle.set()
        # Totals of publishes and acks that reached Redis (for `sent`), and the acks of
        # the batch in flight, and who waits for totals (woken after every round trip).
        self.pub_done = 0
        self.ack_done = 0
        self._acks_in_flight = 0
        self._sent_waiters = Waiters()
        # The batch being sent: its number, whether it went out before (its outcome
        # unknown: the script checks whether Redis stored it already), and since when.
        self.publisher = publisher
        self._pub_seq = 0
        self._pub_again = False
        self._pub_since = 0.0
        self._pub_reg = False  # the script registers the batch's levels (ZADD)
        self._reg_at = float("-inf")  # when a batch last registered its levels
        self.now: Callable[[], float] = time.monotonic  # for that age (a fake in tests)
        self._pub_chunk: list[tuple[int, bytes, asyncio.Future[None] | None]] = []

    # -- queueing -----------------------------------------------------------

    def kick(self) -> None:
        """Something is queued: run a cycle soon."""
        self._idle.clear()
        self._kick.set()

    def pending_pub(self) -> int:
        """Publishes not in the last snapshot."""
        return len(self.outbox) + len(self._pub_chunk) + self.sent_pub

    def pending_ack(self) -> int:
        """Acks not in the last snapshot."""
        return len(self.acks) + self.sent_ack

    def abandon(self, error: BaseException) -> None:
        """Closing without having sent everything: tell the publishers still waiting."""
        for _, _, fut in (*self._pub_chunk, *self.outbox):
            if fut is not None and not fut.done():
                fut.set_exception(error)
        self._sent_waiters.fail_all(error)

    def call(
        self, cmd: tuple[Any, ...], *, check: tuple[Any, ...] | None = None
    ) -> asyncio.Future[Any]:
        """Queue a command; the future gets its reply (or the error). A write leaving
        a mark gives `check`, what asks for it past MARK_KEEP (see marks.py). It is
        encoded here: one that cannot be (Unsendable) fails alone, never its batch."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            packed = encode_command(cmd)
            asks = None if check is None else encode_command(check)
        except Unsendable as exc:
            log.error("%s", exc)
            fut.set_exception(exc)
            return fut
        self.ops.append(Op(packed, fut, asks))
        self.kick()
        return fut

    def fire(self, cmd: tuple[Any, ...]) -> None:
        """Queue a command nobody waits for (errors are logged, not raised)."""
        fut = self.call(cmd)
        fut.add_done_callback(_log_failure)

    async def sent(self) -> None:
        """Wait until every publish and ack queued so far has reached Redis (what is
        queued later does not hold it up: under steady load the queues never empty)."""
        pubs = self.pub_done + len(self._pub_chunk) + len(self.outbox)
        acks = self.ack_done + self._acks_in_flight + len(self.acks)
        while self.pub_done < pubs or self.ack_done < acks:
            await self._sent_waiters.park()

    async def drained(self) -> None:
        """Wait until nothing is queued or in flight."""
        while not self._idle.is_set():
            await self._idle.wait()

    def busy(self) -> bool:
        """Anything queued or in flight?"""
        return not self._idle.is_set()

    # -- the loop -----------------------------------------------------------

    async def run(self) -> None:
        """Send queued work until cancelled."""
        while True:
            if not self._queued():
                self._idle.set()
                self._kick.clear()
                self._parked = True
                try:
                    await self._kick.wait()
                finally:
                    self._parked = False
            if self._backoff_next:  # a publisher's send failed: retry after a backoff
                self._backoff_next = False
                await asyncio.sleep(self.backoff.next_delay())
            async with self._lock:  # a publisher may be sending (send_now)
                if not self._queued():
                    continue
                ok = await self._attempt()
            if not ok:
                await asyncio.sleep(self.backoff.next_delay())

    async def send_now(self) -> None:
        """Send what is queued in the caller's task if the write path is idle: the
        write goes out at once, not after the flusher task has woken (a loop turn on
        every publish's path). Otherwise (busy, or Redis unreachable) the flusher
        task sends it with what else is queued."""
        if not self._parked or self._lock.locked() or self.down_since is not None:
            self.kick()
            return
        self._idle.clear()
        ok = None
        try:
            async with self._lock:
                ok = await self._attempt()
        finally:
            if ok is False:
                self._backoff_next = True
            if ok and not self._queued():
                self._idle.set()
            else:
                self.kick()

    def _queued(self) -> bool:
        return bool(self.outbox or self.acks or self.ops or self._pub_chunk or self.want_stats)

    async def _attempt(self) -> bool:
        """One cycle and its bookkeeping; False if it failed (retry after a backoff)."""
        try:
            await self.cycle()
        except LinkDown as exc:
            self._down(str(exc))
            return False
        except Exception:  # a bug must not silently end the write path
            log.exception("Redis write batch failed; retrying")
            return False
        finally:
            if self._sent_waiters:
                self._sent_waiters.wake_all()
        now = time.monotonic()
        if self.down_since is not None:
            log.warning("Redis reachable again after %.1fs", now - self.down_since)
            self.down_since = None
            self.recovered_at = now
        elif self.last_ok and now - self.last_ok > self.stall_after:
            log.warning(
                "no round trip to Redis for %.1fs (paused or stalled): "
                "peers get one heartbeat TTL to beat again",
                now - self.last_ok,
            )
            self.stalled_at = now
        self.last_ok = now
        self.backoff.reset()
        return True

    def _down(self, why: str) -> None:
        self.retrying = True
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("Redis connection lost (%s); retrying with backoff", why)

    async def cycle(self) -> None:
        """One round trip: publishes, acks, operations, and a stats read."""
        cmds: list[tuple[Any, ...]] = []
        if not self._pub_chunk and self.outbox:
            n = min(PUBLISH_CHUNK, len(self.outbox))
            self._pub_chunk = [self.outbox.popleft() for _ in range(n)]
            self._pub_seq += 1
            now, self._pub_again = self.now(), False
            self._pub_reg = now - self._reg_at >= REGISTER_EVERY  # ZADD NX its levels
            self._reg_at = now if self._pub_reg else self._reg_at
        if self._pub_chunk:
            raw = Raw(b"".join(seg for _, seg, _ in self._pub_chunk), 4 * len(self._pub_chunk))
            if not self._pub_again:
                again, self._pub_since = b"0", self.now()
            else:  # past MARK_KEEP, Redis may have dropped the mark: ask, never add blind
                again = b"2" if past_mark(self._pub_since, self.now()) else b"1"
            seq, again = self._pub_seq, again + b"r" if self._pub_reg else again
            cmds.append(evalsha("publish_batch", self.prefix, self.publisher, seq, again, raw))
            self._pub_again = True
        since = self.acks_since
        ack_chunk = [self.acks.popleft() for _ in range(min(ACK_CHUNK, len(self.acks)))]
        if not self.acks:
            self.acks_since = None
        if ack_chunk:
            raw = Raw(b"".join(ack_chunk), 3 * len(ack_chunk))
            # An ack is judged as of when it was taken: its wait here (a stalled loop,
            # a slow link) does not count against the lease.
            waited = 0 if since is None else int((time.monotonic() - since) * 1000)
            cmds.append(evalsha("ack", self.prefix, self.worker, self.vt_ms + waited, raw))
        ops = [self.ops.popleft() for _ in range(min(200, len(self.ops)))]
        if ops:
            t = self.now()
            cmds.extend(op.to_send(t) for op in ops)
        now = time.monotonic()
        stats = self.want_stats or bool(ops) or now - self.last_stats >= STATS_EVERY
        if stats:
            cmds.append(evalsha("stats", self.prefix))
        self.sent_ack += len(ack_chunk)
        self._acks_in_flight = len(ack_chunk)
        try:
            replies = await self.link.execute(cmds)
        except BaseException as exc:
            # Not sent (or unknown): put it back, in order, for the retry. Commands are
            # encoded when queued, so an error other than the link's is a bug: the
            # operations of this batch fail with it rather than be retried for ever.
            # Its acks may have been taken (a publisher cancelled in send_now drops the
            # connection mid-read): the retry's "not pending" is not a lost lease.
            self.retrying = True
            self.sent_ack -= len(ack_chunk)
            self.acks.extendleft(reversed(ack_chunk))
            if since is not None:
                self.acks_since = since
            if isinstance(exc, BrokerError | asyncio.CancelledError):
                self.ops.extendleft(reversed(ops))
            else:
                for op in ops:
                    if not op.future.done():
                        op.future.set_exception(exc)
            raise
        finally:
            self._acks_in_flight = 0
        self.ack_done += len(ack_chunk)  # reached Redis, taken or refused
        i = 0
        refused: Exception | None = None
        if self._pub_chunk:
            r = pub_reply = replies[i]
            i += 1
            if isinstance(r, Exception):
                # Kept and sent again after a backoff (out of memory, a read-only replica:
                # the publishers wait). The replies after it are still handled: the
                # operations beside it (heartbeats) must not wait for ever.
                refused = r
        if self._pub_chunk and refused is None:
            self._stored(self._pub_chunk, pub_reply)
            self._pub_chunk = []
        elif self._pub_chunk and stored_nothing(refused):  # OOM: see refusals.py
            resend = self.refusals.refuse(self._pub_chunk, self.link.describe(refused))
            self.outbox.extendleft(reversed(resend))
            self.pub_done += len(self._pub_chunk) - len(resend)
            self._pub_chunk = []
            refused = refused if resend else None  # a retry to back off before, or none
        if ack_chunk:
            r = replies[i]
            i += 1
            if isinstance(r, Exception):
                self.sent_ack -= len(ack_chunk)
                self.late_rejected += len(ack_chunk)
                if is_nogroup(r):
                    self.on_lost_state()
                else:
                    log.error("ack batch failed: %s", self.link.describe(r))
            elif r:
                self.sent_ack -= len(r)
                if not self.retrying:  # after a retry, "not pending" may mean "acked already"
                    self.late_rejected += len(r)
                    log.warning("%d group-committed acks refused: lease lost meanwhile", len(r))
        for op in ops:
            r = replies[i]
            i += 1
            if isinstance(r, Exception) and is_nogroup(r):
                self.on_lost_state()
            if not op.future.done():
                if isinstance(r, Exception):
                    op.future.set_exception(r)
                else:
                    op.future.set_result(r)
        self.retrying = False
        if stats:
            r = replies[i]
            if isinstance(r, Exception):
                if is_nogroup(r):
                    self.on_lost_state()
            else:
                self.want_stats = False
                self.last_stats = now
                self.sent_pub = 0
                self.sent_ack = 0
                self.on_snapshot(parse_stats(r, now))
        if refused is not None:
            log.error("publish batch refused by Redis: %s", self.link.describe(refused))
            raise LinkDown(self.link.describe(refused))

    def _stored(
        self, chunk: list[tuple[int, bytes, asyncio.Future[None] | None]], failed: Any
    ) -> None:
        """A publish batch reached Redis: its publishers may go on, but those whose
        level's key is no stream (`failed`: their positions) get an error, not stored;
        -1: all get one, the outcome unknown (see MARK_KEEP)."""
        self.refusals.stored()
        self.sent_pub += len(chunk) - fail_unstored(chunk, failed)
        self.pub_done += len(chunk)
        for _, _, fut in chunk:
            if fut is not None and not fut.done():
                fut.set_result(None)


def _log_failure(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("Redis command failed: %s", fut.exception())
