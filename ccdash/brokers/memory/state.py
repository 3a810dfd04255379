"""The memory broker's state: where each message is, and the upkeep of it.

Where a message is, at any time (the invariant the tests check):
  ready    in its priority level (`_levels`), waiting for a receive;
  delayed  in `_delayed`, waiting out a retry backoff;
  leased   in `_leases` or `_stray` (by receipt), and its holder's `_by_holder` entry;
  dead     in `_dead`;
  acked    gone (`acked` counts them: every message published and not elsewhere).

Leases are granted with deadline = now + visibility timeout, so in grant order
their deadlines only grow: `_leases` (a dict, insertion-ordered) is itself the
expiry queue, and the expired ones are its first k entries. Only a lease whose
deadline breaks that order (an `extend` to a sooner deadline than a newer
lease's, a lowered visibility timeout) goes to `_stray`, with its own
deadline-ordered index. So the per-message path pays for no expiry index at all.

The state and what keeps it (leases' indexes, retries, expiry, timers, wake-ups) are
here; `views` adds the operators' views and DLQ actions, `broker` the message path.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import insort

from ccdash.brokers.base import Broker
from ccdash.brokers.codec import kept_body
from ccdash.brokers.deadlines import DeadlineBuckets
from ccdash.brokers.memory.records import INF, Dedup, Level, Msg, failures
from ccdash.brokers.types import (
    REASON_EXPIRED,
    REASON_RELEASED,
    DeadLetter,
    HistoryEntry,
    QueueConfig,
    Receipt,
    ReceiptRejected,
)
from ccdash.clock import Clock, MonotonicClock, TimerHandle
from ccdash.waiters import Waiters

_STALL_RECHECK = 0.05  # seconds between looks at leases held back by a stall


class MemoryState(Broker):
    """The memory broker's state and its upkeep (the parts every operation shares)."""

    def __init__(self, config: QueueConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or QueueConfig()
        self.clock: Clock = clock or MonotonicClock()
        self._levels: dict[int, Level] = {}
        self._order: list[int] = []  # priorities with a non-empty level, highest first
        self._ready = 0
        self._delayed: DeadlineBuckets[Msg] = DeadlineBuckets()
        self._leases: dict[Receipt, Msg] = {}  # deadlines non-decreasing in dict order
        self._last_deadline = -INF  # the latest deadline ever put in _leases
        self._stray: dict[Receipt, Msg] = {}  # leases out of that order...
        self._stray_expiry: DeadlineBuckets[Msg] = DeadlineBuckets()  # ...by deadline
        self._by_holder: dict[str, dict[Receipt, Msg]] = {}
        self._holders_cap = 16  # prune emptied holder dicts when there are this many
        self._dead: dict[str, tuple[Msg, DeadLetter]] = {}
        self._dedup: dict[str, Dedup] = {}
        self._dedup_expiry: DeadlineBuckets[Dedup] = DeadlineBuckets(resolution=1.0)
        self._seq = itertools.count(1)
        self._issued = 0  # the last receipt handed out (receipts count up from 1)
        self._readers = Waiters()  # parked in wait_ready
        self._writers = Waiters()  # parked in publish (full)
        # No retry or lease deadline falls before `_due`, and no deadline in _leases
        # before `_lease_due`: lower bounds, made exact on each reap. The hot paths skip
        # reaping with one comparison, and _leases' front (which acks leave full of
        # holes for a dict iterator to step over) is looked at only when a lease is due.
        self._due = INF
        self._lease_due = INF
        self._timer: TimerHandle | None = None
        self._timer_at = float("inf")
        self._closed = False
        self.published = 0
        self._purged = 0  # dead messages deleted for good (see `acked`)
        self.dead_lettered = 0
        self.redelivered = 0

    def _room(self) -> bool:
        """Whether a bounded queue can take one more message (dead ones do not count)."""
        cap = self.config.capacity
        if cap is None or self.outstanding() < cap:
            return True
        # Full, unless a lease on its last attempt has expired into the DLQ unreaped.
        self._reap(self.clock.now())
        return self.outstanding() < cap

    def _is_duplicate(self, dedup_id: str | None) -> bool:
        if dedup_id is None:
            return False
        entry = self._dedup.get(dedup_id)
        return entry is not None and entry.deadline > self.clock.now()

    def _new_level(self, priority: int) -> Level:
        level = self._levels[priority] = Level()
        insort(self._order, priority, key=lambda p: -p)
        return level

    def _expire_dedup(self, now: float) -> None:
        if self._dedup_expiry:
            for entry in self._dedup_expiry.pop_expired(now):
                if self._dedup.get(entry.key) is entry:
                    del self._dedup[entry.key]

    def _pop_ready(self) -> Msg:
        """Take the next ready message (the caller checked there is one): highest
        priority first, then lowest sequence, whether fresh or returned."""
        prio = self._order[0]
        level = self._levels[prio]
        msg = level.pop()
        if not level.fresh and not level.returned:
            del self._levels[prio]
            del self._order[0]
        return msg

    def _make_ready(self, msg: Msg) -> None:
        level = self._levels.get(msg.priority)
        if level is None:
            level = self._new_level(msg.priority)
        heapq.heappush(level.returned, (msg.seq, msg))
        self._ready += 1

    # -- ending leases ------------------------------------------------------

    def _take_lease(self, receipt: Receipt) -> Msg:
        """Remove a live lease from every index; ReceiptRejected if it is gone."""
        self._reap(self.clock.now())
        msg = self._leases.pop(receipt, None)
        if msg is None:
            msg = self._pop_stray(receipt)
        del self._by_holder[msg.holder][receipt]
        return msg

    def _pop_stray(self, receipt: Receipt) -> Msg:
        """Remove a live lease kept out of grant order; ReceiptRejected if there is none."""
        msg = self._stray.pop(receipt, None)
        if msg is None:
            raise ReceiptRejected(f"receipt {receipt!r} is not a live lease")
        self._stray_expiry.remove(receipt, msg.deadline)
        return msg

    def _grant(self, receipt: Receipt, msg: Msg) -> None:
        """Index a lease (its deadline set) outside receive: in order if it keeps it."""
        # In order only if no later receive could grant a sooner deadline: a lease
        # extended past now + visibility timeout would push every new lease astray.
        if self._last_deadline <= msg.deadline <= self.clock.now() + self.config.visibility_timeout:
            self._last_deadline = msg.deadline
            self._leases[receipt] = msg
            if msg.deadline < self._lease_due:
                self._lease_due = msg.deadline
        else:
            msg.receipt = receipt
            self._stray[receipt] = msg
            self._stray_expiry.add(receipt, msg)
        if msg.deadline < self._due:
            self._due = msg.deadline
        held = self._by_holder.get(msg.holder)
        if held is None:
            held = self._holder_index(msg.holder)
        held[receipt] = msg

    def _holder_index(self, holder: str) -> dict[Receipt, Msg]:
        """A new lease index for `holder`. Acks leave emptied ones behind (rebuilding
        one per message costs more); they are dropped whenever the count doubles."""
        by_holder = self._by_holder
        if len(by_holder) >= self._holders_cap:
            for h in [h for h, held in by_holder.items() if not held]:
                del by_holder[h]
            self._holders_cap = 2 * len(by_holder) + 16
        held: dict[Receipt, Msg] = {}
        by_holder[holder] = held
        return held

    def _requeue(self, msg: Msg, wait: float) -> None:
        """Ready at once, or after `wait` seconds."""
        if wait <= 0:
            self._make_ready(msg)
            self._readers.wake_all()
        else:
            msg.deadline = self.clock.now() + wait
            self._delayed.add(msg.id, msg)
            if msg.deadline < self._due:
                self._due = msg.deadline
            self._arm()

    def _return(self, msg: Msg, reason: str, error: str, now: float) -> None:
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

    def _record(self, msg: Msg, now: float, outcome: str, error: str) -> None:
        history = failures(msg)
        if history is None:
            history = msg.history = []
        history.append(HistoryEntry(now, msg.holder, msg.attempt, outcome, error))
        del history[:-20]  # bounded: the last 20 failures tell the story

    def _bury(self, msg: Msg, reason: str, error: str, now: float) -> None:
        self._dead[msg.id] = (
            msg,
            DeadLetter(
                msg.id,
                reason,
                msg.attempt,
                error,
                msg.priority,
                kept_body(msg.data, msg.how),
                now,
                tuple(failures(msg) or ()),
            ),
        )
        self.dead_lettered += 1
        if self._writers:
            self._writers.wake()

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
            head = INF
            for receipt, msg in leases.items():  # in deadline order: stop at the first alive
                if msg.deadline > judge:
                    head = msg.deadline
                    break
                expired.append((receipt, msg))
            self._lease_due = head
            for receipt, msg in expired:
                del leases[receipt]
                self._expire(receipt, msg, now)
            woke = woke or bool(expired)
        if self._stray_expiry:
            judge = self.expiry_now(now)
            for msg in self._stray_expiry.pop_expired(judge):
                del self._stray[msg.receipt]
                self._expire(msg.receipt, msg, now)
                woke = True
        self._due = self._next_deadline()
        if judge < now and self._due <= now:
            # Judging is held back (a stall): look again shortly, not in a timer spin.
            self._due = now + _STALL_RECHECK
        if woke and self._readers:
            self._readers.wake_all()

    def _expire(self, receipt: Receipt, msg: Msg, now: float) -> None:
        """A lease ran out (already out of the lease dicts): end it as lease-expired."""
        del self._by_holder[msg.holder][receipt]
        self._return(msg, REASON_EXPIRED, "visibility timeout passed", now)
        if self.on_event is not None:  # once the message is in its new place (see acked)
            self.on_event(
                "lease-expired",
                {"message_id": msg.id, "consumer": msg.holder, "attempt": msg.attempt},
            )

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

    @property
    def acked(self) -> int:
        """Messages acked so far: the published ones in no other place. Every message
        is in exactly one (the invariant above), so the ack path counts nothing."""
        return self.published - self.outstanding() - len(self._dead) - self._purged

    def outstanding(self) -> int:
        """Messages not yet acked or dead-lettered (expired leases count until reaped:
        they are still outstanding either way)."""
        return self._ready + len(self._delayed) + len(self._leases) + len(self._stray)
