"""The embedded memory broker: the default, fastest, and gone when the process ends.

Where a message is, at any time (the invariant the tests check):
  ready    in its priority level (`_levels`), waiting for a receive;
  delayed  in `_delayed`, waiting out a retry backoff;
  leased   in `_leases` or `_stray` (by receipt), and its holder's `_by_holder` entry;
  dead     in `_dead`;
  acked    gone (counted in `acked`).

Leases are granted with deadline = now + visibility timeout, so in grant order
their deadlines only grow: `_leases` (a dict, insertion-ordered) is itself the
expiry queue, and the expired ones are its first k entries. Only a lease whose
deadline breaks that order (an `extend` to a sooner deadline than a newer
lease's, a lowered visibility timeout) goes to `_stray`, with its own
deadline-ordered index. So the per-message path pays for no expiry index at all.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from bisect import insort
from collections import deque
from collections.abc import Sequence
from typing import Any

from ccdash.brokers.base import (
    REASON_CONSUMER_FAILED,
    REASON_EXPIRED,
    REASON_FAILED,
    REASON_RELEASED,
    Broker,
    BrokerClosed,
    DeadLetter,
    Delivery,
    HistoryEntry,
    LeaseInfo,
    MessageWhere,
    PayloadTooLarge,
    QueueConfig,
    QueueFull,
    QueueStats,
    Receipt,
    ReceiptRejected,
    decode_json_text,
    encode_json_body,
    storable_text,
    too_large,
)
from ccdash.brokers.deadlines import DeadlineBuckets
from ccdash.clock import Clock, MonotonicClock, TimerHandle


class _Msg:
    """One message's record. `deadline` is the lease deadline while leased and
    the visible-again time while delayed (a message is never both)."""

    __slots__ = (
        "id",
        "data",
        "is_json",
        "priority",
        "seq",
        "attempt",
        "deadline",
        "holder",
        "receipt",
        "published_at",
        "history",
    )

    def __init__(
        self, mid: str, data: bytes | str, is_json: bool, priority: int, seq: int, now: float
    ) -> None:
        self.id = mid
        self.data: Any = data  # bytes, or JSON text when is_json
        self.is_json = is_json
        self.priority = priority
        self.seq = seq
        self.attempt = 0
        self.deadline = 0.0
        self.holder = ""
        self.receipt: Receipt = 0
        self.published_at = now
        self.history: list[HistoryEntry] | None = None  # only once a delivery failed


class _Dedup:
    __slots__ = ("key", "message_id", "deadline")

    def __init__(self, key: str, message_id: str, deadline: float) -> None:
        self.key = key
        self.message_id = message_id
        self.deadline = deadline


class _Level:
    """Ready messages of one priority: fresh ones in publish order, and returned
    ones (nacked, expired, released) in a heap by their original sequence so a
    retried message keeps its place ahead of newer ones."""

    __slots__ = ("fresh", "returned")

    def __init__(self) -> None:
        self.fresh: deque[_Msg] = deque()
        self.returned: list[tuple[int, _Msg]] = []

    def pop(self) -> _Msg:
        """The oldest message by sequence, fresh or returned (the level is not empty)."""
        returned = self.returned
        if returned and (not self.fresh or returned[0][0] < self.fresh[0].seq):
            return heapq.heappop(returned)[1]
        return self.fresh.popleft()


_INF = float("inf")
_STALL_RECHECK = 0.05  # seconds between looks at leases held back by a stall


def _by_deadline(msg: _Msg) -> float:
    return msg.deadline


class MemoryBroker(Broker):
    """An in-process leased queue with retries, DLQ, priorities, dedup and backpressure."""

    url = "memory"
    stores_on_publish_nowait = True  # the process is the store

    def __init__(self, config: QueueConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or QueueConfig()
        self.clock: Clock = clock or MonotonicClock()
        self._levels: dict[int, _Level] = {}
        self._order: list[int] = []  # priorities with a non-empty level, highest first
        self._ready = 0
        self._delayed: DeadlineBuckets[_Msg] = DeadlineBuckets()
        self._leases: dict[Receipt, _Msg] = {}  # deadlines non-decreasing in dict order
        self._last_deadline = -_INF  # the latest deadline ever put in _leases
        self._stray: dict[Receipt, _Msg] = {}  # leases out of that order...
        self._stray_expiry: DeadlineBuckets[_Msg] = DeadlineBuckets()  # ...by deadline
        self._by_holder: dict[str, dict[Receipt, _Msg]] = {}
        self._holders_cap = 16  # prune emptied holder dicts when there are this many
        self._dead: dict[str, tuple[_Msg, DeadLetter]] = {}
        self._dedup: dict[str, _Dedup] = {}
        self._dedup_expiry: DeadlineBuckets[_Dedup] = DeadlineBuckets(resolution=1.0)
        self._seq = itertools.count(1)
        self._receipts = itertools.count(1)
        self._readers: deque[asyncio.Future[None]] = deque()  # parked in wait_ready
        self._writers: deque[asyncio.Future[None]] = deque()  # parked in publish (full)
        # No retry or lease deadline falls before `_due`, and no deadline in _leases
        # before `_lease_due`: lower bounds, made exact on each reap. The hot paths skip
        # reaping with one comparison, and _leases' front (which acks leave full of
        # holes for a dict iterator to step over) is looked at only when a lease is due.
        self._due = _INF
        self._lease_due = _INF
        self._timer: TimerHandle | None = None
        self._timer_at = float("inf")
        self._closed = False
        self.published = 0
        self.acked = 0
        self.dead_lettered = 0
        self.redelivered = 0

    # -- publishing ---------------------------------------------------------

    def _room(self) -> bool:
        """Whether a bounded queue can take one more message (dead ones do not count)."""
        cap = self.config.capacity
        if cap is None or self.outstanding() < cap:
            return True
        # Full, unless a lease on its last attempt has expired into the DLQ unreaped.
        self._reap(self.clock.now())
        return self.outstanding() < cap

    async def publish(self, body: Any, *, priority: int = 0, dedup_id: str | None = None) -> str:
        """Accept a message, waiting while a bounded queue is full."""
        while not self._room() and not self._is_duplicate(dedup_id):
            if self._closed:
                raise BrokerClosed("broker is closed")
            fut = asyncio.get_running_loop().create_future()
            self._writers.append(fut)
            self._arm()  # an expiry into the DLQ frees room too: be there to see it
            try:
                await fut
            except BaseException:
                if not fut.done():
                    fut.cancel()
                elif not fut.cancelled() and self._room():
                    # Woken for a free slot but leaving without it: pass the wake-up
                    # on, or the next parked publisher waits for another ack.
                    self._wake_writer()
                raise
        return self.publish_nowait(body, priority=priority, dedup_id=dedup_id)

    def _is_duplicate(self, dedup_id: str | None) -> bool:
        if dedup_id is None:
            return False
        entry = self._dedup.get(dedup_id)
        return entry is not None and entry.deadline > self.clock.now()

    def publish_nowait(
        self, body: Any, *, priority: int = 0, dedup_id: str | None = None
    ) -> str:
        """Accept a message now, or raise QueueFull."""
        if self._closed:
            raise BrokerClosed("broker is closed")
        now = self.clock.now()
        if dedup_id is not None:
            self._expire_dedup(now)
            entry = self._dedup.get(dedup_id)
            if entry is not None:
                return entry.message_id
        if self.config.capacity is not None and not self._room():
            raise QueueFull(f"queue is full ({self.config.capacity} messages)")
        # Bodies are kept as published: bytes as they are, anything else as its JSON
        # text (a str, never bytes: nothing here needs them), made once here, so later
        # changes by the publisher are never seen and every delivery decodes a fresh value.
        data: bytes | str
        limit = self.config.max_body_bytes
        if type(body) is bytes:
            data, is_json = body, False
        elif isinstance(body, (bytes, bytearray, memoryview)):  # noqa: UP038 - faster
            data, is_json = bytes(body), False
        else:
            data, is_json = encode_json_body(body, limit), True
        if not is_json and len(data) > limit:
            raise PayloadTooLarge(too_large(len(data), limit))
        seq = next(self._seq)
        msg = _Msg(f"m{seq}", data, is_json, priority, seq, now)
        if dedup_id is not None:
            entry = _Dedup(dedup_id, msg.id, now + self.config.dedup_window)
            self._dedup[dedup_id] = entry
            self._dedup_expiry.add(dedup_id, entry)
        level = self._levels.get(priority)
        if level is None:
            level = self._new_level(priority)
        level.fresh.append(msg)
        self._ready += 1
        self.published += 1
        if self._readers:
            self._wake_readers()
        return msg.id

    def _new_level(self, priority: int) -> _Level:
        level = self._levels[priority] = _Level()
        insort(self._order, priority, key=lambda p: -p)
        return level

    def _expire_dedup(self, now: float) -> None:
        if self._dedup_expiry:
            for entry in self._dedup_expiry.pop_expired(now):
                if self._dedup.get(entry.key) is entry:
                    del self._dedup[entry.key]

    # -- receiving ----------------------------------------------------------

    def ready_count(self) -> int:
        """Messages ready now (after moving due retries and expired leases)."""
        self._reap(self.clock.now())
        return self._ready

    async def wait_ready(self) -> None:
        """Park until something may be ready: a publish, a retry coming due, an expiry."""
        if self._closed:
            raise BrokerClosed("broker is closed")
        if self.ready_count():
            return
        fut = asyncio.get_running_loop().create_future()
        self._readers.append(fut)
        self._arm()
        try:
            await fut
        finally:
            if not fut.done():
                fut.cancel()

    async def receive(self, holders: Sequence[str]) -> list[Delivery]:
        """Lease up to len(holders) ready messages, the i-th to holders[i]."""
        return self.receive_nowait(holders)

    def receive_nowait(self, holders: Sequence[str]) -> list[Delivery]:
        """`receive` without the coroutine: the per-message hot path.

        Written for the interpreter: one pass, few attribute loads (binding locals
        costs more than it saves at batch size 1), no per-lease expiry index.
        """
        now = self.clock.now()
        if now >= self._due:
            self._reap(now)
        ready = self._ready
        n = len(holders)
        if n > ready:
            if not ready:
                return []
            holders, n = holders[:ready], ready
        self._ready = ready - n
        deadline = now + self.config.visibility_timeout
        if deadline >= self._last_deadline:
            self._last_deadline = deadline
            leases = self._leases
            if deadline < self._lease_due:
                self._lease_due = deadline
                if deadline < self._due:
                    self._due = deadline
        else:  # the visibility timeout was lowered: these would break _leases' order
            leases = self._stray
        by_holder = self._by_holder
        out: list[Delivery] = []
        for holder in holders:
            level = self._levels[self._order[0]]
            if level.returned:
                msg = self._pop_ready()
            else:  # only fresh messages at the top priority: the common case, inline
                msg = level.fresh.popleft()
                if not level.fresh:
                    del self._levels[self._order.pop(0)]
            receipt = next(self._receipts)
            attempt = msg.attempt = msg.attempt + 1
            if attempt > 1:
                self.redelivered += 1
            msg.deadline = deadline
            msg.holder = holder
            msg.receipt = receipt
            leases[receipt] = msg
            held = by_holder.get(holder)
            if held is None:
                held = self._holder_index(holder)
            held[receipt] = msg
            out.append(
                Delivery(
                    msg.id,
                    decode_json_text(msg.data) if msg.is_json else msg.data,
                    attempt,
                    holder,
                    receipt,
                    msg.priority,
                    deadline,
                    msg.published_at,
                )
            )
        if leases is self._stray:
            for d in out:
                self._stray_expiry.add(d.receipt, leases[d.receipt])
            if deadline < self._due:
                self._due = deadline
        if self._readers and deadline < self._timer_at:
            self._arm()
        return out

    def _pop_ready(self) -> _Msg:
        """Take the next ready message (the caller checked there is one): highest
        priority first, then lowest sequence, whether fresh or returned."""
        prio = self._order[0]
        level = self._levels[prio]
        msg = level.pop()
        if not level.fresh and not level.returned:
            del self._levels[prio]
            del self._order[0]
        return msg

    def _make_ready(self, msg: _Msg) -> None:
        level = self._levels.get(msg.priority)
        if level is None:
            level = self._new_level(msg.priority)
        heapq.heappush(level.returned, (msg.seq, msg))
        self._ready += 1

    # -- ending leases ------------------------------------------------------

    def _take_lease(self, receipt: Receipt) -> _Msg:
        """Remove a live lease from every index; ReceiptRejected if it is gone."""
        self._reap(self.clock.now())
        msg = self._leases.pop(receipt, None)
        if msg is None:
            msg = self._pop_stray(receipt)
        del self._by_holder[msg.holder][receipt]
        return msg

    def _pop_stray(self, receipt: Receipt) -> _Msg:
        """Remove a live lease kept out of grant order; ReceiptRejected if there is none."""
        msg = self._stray.pop(receipt, None)
        if msg is None:
            raise ReceiptRejected(f"receipt {receipt!r} is not a live lease")
        self._stray_expiry.remove(receipt, msg.deadline)
        return msg

    def _grant(self, receipt: Receipt, msg: _Msg) -> None:
        """Index a lease (its deadline set) outside receive: in order if it keeps it."""
        # In order only if no later receive could grant a sooner deadline: a lease
        # extended past now + visibility timeout would push every new lease astray.
        if self._last_deadline <= msg.deadline <= self.clock.now() + self.config.visibility_timeout:
            self._last_deadline = msg.deadline
            self._leases[receipt] = msg
            if msg.deadline < self._lease_due:
                self._lease_due = msg.deadline
        else:
            self._stray[receipt] = msg
            self._stray_expiry.add(receipt, msg)
        if msg.deadline < self._due:
            self._due = msg.deadline
        held = self._by_holder.get(msg.holder)
        if held is None:
            held = self._holder_index(msg.holder)
        held[receipt] = msg

    def _holder_index(self, holder: str) -> dict[Receipt, _Msg]:
        """A new lease index for `holder`. Acks leave emptied ones behind (rebuilding
        one per message costs more); they are dropped whenever the count doubles."""
        by_holder = self._by_holder
        if len(by_holder) >= self._holders_cap:
            for h in [h for h, held in by_holder.items() if not held]:
                del by_holder[h]
            self._holders_cap = 2 * len(by_holder) + 16
        held: dict[Receipt, _Msg] = {}
        by_holder[holder] = held
        return held

    async def ack(self, receipt: Receipt) -> None:
        """Delete the leased message."""
        self.ack_nowait(receipt)

    def ack_nowait(self, receipt: Receipt) -> None:
        """`ack` without the coroutine."""
        msg = self._leases.pop(receipt, None)
        if msg is None or msg.deadline <= self.clock.now():
            msg = self._ack_off_path(receipt, msg)
        # An emptied holder dict stays: see _holder_index.
        del self._by_holder[msg.holder][receipt]
        self.acked += 1
        if self._writers:
            self._wake_writer()

    def _ack_off_path(self, receipt: Receipt, msg: _Msg | None) -> _Msg:
        """The rare acks: of a lease that expired unreaped (taken from _leases already),
        of a stray lease, or of no lease at all. Returns the message if the ack stands."""
        now = self.clock.now()
        if msg is not None:  # past its deadline: expired, unless the process was stalled
            if msg.deadline > self.expiry_now(now):
                return msg  # the loop was blocked, not the holder: the ack stands
            self._expire(msg, now)
            if self._readers:
                self._wake_readers()
            self._reap(now)
            raise ReceiptRejected(f"receipt {receipt!r} is not a live lease")
        self._reap(now)
        return self._pop_stray(receipt)

    async def ack_many(self, receipts: Sequence[Receipt]) -> list[Receipt]:
        """Ack several at once; returns the rejected receipts."""
        rejected: list[Receipt] = []
        for r in receipts:
            try:
                self.ack_nowait(r)
            except ReceiptRejected:
                rejected.append(r)
        return rejected

    async def nack(self, receipt: Receipt, error: str = "", *, delay: float | None = None) -> bool:
        """Retry after a backoff, or dead-letter at max_attempts."""
        msg = self._take_lease(receipt)
        now = self.clock.now()
        error = storable_text(error)
        self._record(msg, now, REASON_FAILED, error)
        if msg.attempt >= self.config.max_attempts:
            self._bury(msg, REASON_FAILED, error, now)
            return True
        self._requeue(msg, self.config.backoff(msg.attempt) if delay is None else delay)
        return False

    def _requeue(self, msg: _Msg, wait: float) -> None:
        """Ready at once, or after `wait` seconds."""
        if wait <= 0:
            self._make_ready(msg)
            self._wake_readers()
        else:
            msg.deadline = self.clock.now() + wait
            self._delayed.add(msg.id, msg)
            if msg.deadline < self._due:
                self._due = msg.deadline
            self._arm()

    async def defer(self, receipt: Receipt, delay: float) -> None:
        """Back unhandled, visible after `delay`; the attempt is given back."""
        msg = self._take_lease(receipt)
        msg.attempt -= 1
        self._requeue(msg, delay)

    async def extend(self, receipt: Receipt, seconds: float) -> float:
        """Move a live lease's deadline to now + seconds."""
        msg = self._take_lease(receipt)
        msg.deadline = self.clock.now() + max(0.0, seconds)
        self._grant(receipt, msg)
        return msg.deadline

    async def extend_many(self, receipts: Sequence[Receipt], seconds: float
                          ) -> list[float | None]:
        """`extend` each, in one call (no coroutine per lease); None where it is gone."""
        out: list[float | None] = []
        deadline = self.clock.now() + max(0.0, seconds)
        for receipt in receipts:
            try:
                msg = self._take_lease(receipt)
            except ReceiptRejected:
                out.append(None)
                continue
            msg.deadline = deadline
            self._grant(receipt, msg)
            out.append(deadline)
        return out

    async def release(self, receipts: Sequence[Receipt], reason: str, error: str = "") -> int:
        """End these leases; the messages are visible again at once."""
        n = 0
        now = self.clock.now()
        error = storable_text(error)
        for receipt in receipts:
            try:
                msg = self._take_lease(receipt)
            except ReceiptRejected:
                continue
            self._return(msg, reason, error, now)
            n += 1
        if n:
            self._wake_readers()
        return n

    async def release_holder(self, holder: str, reason: str, error: str = "") -> int:
        """End every lease `holder` has."""
        held = self._by_holder.get(holder)
        n = await self.release(list(held), reason, error) if held else 0
        if held is not None and not held and self._by_holder.get(holder) is held:
            del self._by_holder[holder]
        return n

    def _return(self, msg: _Msg, reason: str, error: str, now: float) -> None:
        """A lease ended without an ack: back to ready, or to the DLQ at max_attempts."""
        if reason == REASON_RELEASED:
            msg.attempt -= 1  # never handled: the delivery does not count
            self._make_ready(msg)
            return
        self._record(msg, now, reason, error)
        if msg.attempt >= self.config.max_attempts:
            self._bury(msg, reason, error, now)
        else:
            self._make_ready(msg)

    def _record(self, msg: _Msg, now: float, outcome: str, error: str) -> None:
        if msg.history is None:
            msg.history = []
        msg.history.append(HistoryEntry(now, msg.holder, msg.attempt, outcome, error))
        del msg.history[:-20]  # bounded: the last 20 failures tell the story

    def _bury(self, msg: _Msg, reason: str, error: str, now: float) -> None:
        self._dead[msg.id] = (
            msg,
            DeadLetter(
                msg.id,
                reason,
                msg.attempt,
                error,
                msg.priority,
                decode_json_text(msg.data) if msg.is_json else msg.data,
                now,
                tuple(msg.history or ()),
            ),
        )
        self.dead_lettered += 1
        if self._writers:
            self._wake_writer()

    # -- timers -------------------------------------------------------------

    def _reap(self, now: float) -> None:
        """Move due retries to ready and expired leases back (or to the DLQ)."""
        if now < self._due:
            return
        woke = False
        if self._delayed:
            for msg in self._delayed.pop_expired(now):
                self._make_ready(msg)
                woke = True
        judge = now
        if now >= self._lease_due:
            judge = self.expiry_now(now)
            leases = self._leases
            expired = []
            head = _INF
            for msg in leases.values():  # in deadline order: stop at the first alive
                if msg.deadline > judge:
                    head = msg.deadline
                    break
                expired.append(msg)
            self._lease_due = head
            for msg in expired:
                del leases[msg.receipt]
                self._expire(msg, now)
            woke = woke or bool(expired)
        if self._stray_expiry:
            judge = self.expiry_now(now)
            for msg in self._stray_expiry.pop_expired(judge):
                del self._stray[msg.receipt]
                self._expire(msg, now)
                woke = True
        self._due = self._next_deadline()
        if judge < now and self._due <= now:
            # Judging is held back (a stall): look again shortly, not in a timer spin.
            self._due = now + _STALL_RECHECK
        if woke and self._readers:
            self._wake_readers()

    def _expire(self, msg: _Msg, now: float) -> None:
        """A lease ran out (already out of the lease dicts): end it as lease-expired."""
        del self._by_holder[msg.holder][msg.receipt]
        if self.on_event is not None:
            self.on_event("lease-expired", {"message_id": msg.id, "consumer": msg.holder,
                                            "attempt": msg.attempt})
        self._return(msg, REASON_EXPIRED, "visibility timeout passed", now)

    def _next_deadline(self) -> float:
        """The earliest retry or lease deadline (inf if none), as far as reaped."""
        due = self._lease_due
        for index in (self._delayed, self._stray_expiry):
            when = index.next_deadline()
            if when is not None and when < due:
                due = when
        return due

    def _arm(self) -> None:
        """Make sure a timer fires at the next retry/expiry while anyone waits."""
        # `_due` may be early (a lower bound): then the timer reaps, finds nothing, and
        # re-arms at the exact time. Never late.
        when = self._due
        if when >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.clock.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        self._reap(self.clock.now())
        if self._readers or self._writers or self._delayed or self._leases or self._stray:
            self._arm()

    def _wake_readers(self) -> None:
        readers = self._readers
        while readers:
            fut = readers.popleft()
            if not fut.done():
                fut.set_result(None)

    def _wake_writer(self) -> None:
        while self._writers:
            fut = self._writers.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    # -- views --------------------------------------------------------------

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
            ("ready", [m for lv in self._levels.values()
                       for m in (*lv.fresh, *(r[1] for r in lv.returned))]),
            ("delayed", self._delayed.values()),
        ):
            for msg in msgs:
                if msg.id == message_id:
                    return self._where(msg, state, tuple(msg.history or ()))
        return None

    @staticmethod
    def _where(msg: _Msg, state: str, history: tuple[HistoryEntry, ...]) -> MessageWhere:
        return MessageWhere(msg.id, state, msg.priority, msg.attempt,
                            msg.holder if state == "leased" else "",
                            msg.deadline if state in ("leased", "delayed") else 0.0,
                            msg.published_at, history)

    def oldest_ready_published_at(self) -> float | None:
        """The earliest publish time among the heads of the priority levels (each level
        keeps publish order, so its head is its oldest): O(levels)."""
        oldest: float | None = None
        for level in self._levels.values():
            heads = ([level.fresh[0]] if level.fresh else []) + (
                [level.returned[0][1]] if level.returned else [])
            for msg in heads:
                if oldest is None or msg.published_at < oldest:
                    oldest = msg.published_at
        return oldest

    def outstanding(self) -> int:
        """Messages not yet acked or dead-lettered (expired leases count until reaped:
        they are still outstanding either way)."""
        return self._ready + len(self._delayed) + len(self._leases) + len(self._stray)

    def leases(self, limit: int | None = None) -> list[LeaseInfo]:
        """Live leases, soonest deadline first."""
        self._reap(self.clock.now())
        # _leases is already in deadline order: only the strays need sorting.
        ordered = itertools.islice(self._leases.values(), limit)
        stray = sorted(self._stray.values(), key=_by_deadline)
        chosen = itertools.islice(heapq.merge(ordered, stray, key=_by_deadline), limit)
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
            self._wake_readers()
        return len(chosen)

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        """Delete dead messages for good."""
        self._reap(self.clock.now())
        chosen = list(self._dead) if ids is None else [i for i in ids if i in self._dead]
        for mid in chosen:
            del self._dead[mid]
        if chosen and self._writers:
            self._wake_writer()
        return len(chosen)

    async def close(self) -> None:
        """Wake everyone parked; further calls raise BrokerClosed."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._wake_readers()
        while self._writers:
            fut = self._writers.popleft()
            if not fut.done():
                fut.set_result(None)


__all__ = ["MemoryBroker", "REASON_CONSUMER_FAILED"]
