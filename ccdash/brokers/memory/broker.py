"""The embedded memory broker's message path: publish, receive, ack, nack, and the
other ways a lease ends. Tuned for the interpreter: see `receive_nowait`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ccdash.brokers.base import storable_text
from ccdash.brokers.codec import (
    INT_CAP,
    KEPT_AS_IS,
    KEPT_FLAT,
    NEG_INT_CAP,
    SCALAR_BYTES,
    decode_json_text,
    keep_body,
    kept_body,
)
from ccdash.brokers.memory.records import Dedup, Msg
from ccdash.brokers.memory.views import MemoryViews
from ccdash.brokers.types import (
    REASON_FAILED,
    BrokerClosed,
    Delivery,
    QueueFull,
    Receipt,
    ReceiptRejected,
)

_new = object.__new__  # the hot paths build their records field by field


class MemoryBroker(MemoryViews):
    """An in-process leased queue with retries, DLQ, priorities, dedup and backpressure."""

    url = "memory"
    stores_on_publish_nowait = True  # the process is the store

    # -- publishing ---------------------------------------------------------

    async def publish(self, body: Any, *, priority: int = 0, dedup_id: str | None = None) -> str:
        """Accept a message, waiting while a bounded queue is full."""
        while not self._room() and not self._is_duplicate(dedup_id):
            if self._closed:
                raise BrokerClosed("broker is closed")
            self._arm()  # an expiry into the DLQ frees room too: be there to see it
            await self._writers.park()  # woken with a turn for each freed slot
        return self.publish_nowait(body, priority=priority, dedup_id=dedup_id)

    def publish_nowait(self, body: Any, *, priority: int = 0, dedup_id: str | None = None) -> str:
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
        # Bodies are kept so that later changes by the publisher are never seen and
        # every delivery gets a fresh value: bytes and immutable scalars as they are, a
        # flat dict as a copy (copied again per delivery), anything else as JSON text.
        limit = self.config.max_body_bytes
        kind = type(body)
        how = -1
        if kind is bytes:  # the common cases, inline
            if len(body) <= limit:
                data, how = body, KEPT_AS_IS
        elif kind is dict:  # flat (see codec.INT_CAP): kept as a copy
            # Few tests per value; an int is first compared with one-digit (30-bit)
            # literals, which the interpreter does on its fast path, unlike INT_CAP.
            chars = 0
            for k, v in body.items():
                if type(k) is not str:
                    break
                t = type(v)
                if t is str:
                    chars += len(k) + len(v)
                elif t is int:
                    if -0x3FFFFFFF <= v <= 0x3FFFFFFF or NEG_INT_CAP < v < INT_CAP:
                        chars += len(k)
                    else:
                        break
                elif t is float:
                    if v - v == 0.0:  # not inf or NaN
                        chars += len(k)
                    else:
                        break
                elif t is bool or v is None:
                    chars += len(k)
                else:
                    break
            else:
                if 12 * chars + SCALAR_BYTES * len(body) + 2 <= limit:
                    data, how = body.copy(), KEPT_FLAT
        if how < 0:
            data, how = keep_body(body, limit)
        seq = next(self._seq)
        msg = Msg()  # field by field (see Msg; test_memory_broker checks them)
        msg.id = mid = f"m{seq}"
        msg.data = data
        msg.how = how
        msg.priority = priority
        msg.seq = seq
        msg.published_at = now
        if dedup_id is not None:
            entry = Dedup(dedup_id, mid, now + self.config.dedup_window)
            self._dedup[dedup_id] = entry
            self._dedup_expiry.add(dedup_id, entry)
        level = self._levels.get(priority)
        if level is None:
            level = self._new_level(priority)
        level.fresh.append(msg)
        self._ready += 1
        self.published += 1
        if self._readers:
            self._readers.wake_all()
        return mid

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
        self._arm()
        await self._readers.park()

    async def receive(self, holders: Sequence[str]) -> list[Delivery]:
        """Lease up to len(holders) ready messages, the i-th to holders[i]."""
        return self.receive_nowait(holders)

    def receive_nowait(self, holders: Sequence[str]) -> list[Delivery]:
        """`receive` without the coroutine: the per-message hot path.

        Written for the interpreter: one pass, few attribute loads (binding locals
        costs more than it saves at batch size 1), no per-lease expiry index. When
        the top priority has enough fresh messages (never delivered) for the whole
        batch, as it mostly has, they are taken without a look at the others, and
        each one's attempt is 1 without reading it (see Msg).
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
        receipt = self._issued
        self._issued = receipt + n
        by_holder = self._by_holder
        out: list[Delivery] = []
        priority = self._order[0]
        level = self._levels[priority]
        fresh = level.fresh
        if level.returned or len(fresh) < n:  # mixed, or more than one level: in order
            for holder in holders:
                msg = self._pop_ready()
                receipt += 1
                attempt = msg.attempt = msg.attempt + 1
                if attempt > 1:
                    self.redelivered += 1
                msg.deadline = deadline
                msg.holder = holder
                leases[receipt] = msg
                held = by_holder.get(holder)
                if held is None:
                    held = self._holder_index(holder)
                held[receipt] = msg
                out.append(self._delivery(msg, receipt))
        else:
            for holder in holders:
                msg = fresh.popleft()
                receipt += 1
                msg.attempt = 1
                msg.deadline = deadline
                msg.holder = holder
                leases[receipt] = msg
                held = by_holder.get(holder)
                if held is None:
                    held = self._holder_index(holder)
                held[receipt] = msg
                # Delivery(...), field by field (see publish_nowait)
                d = _new(Delivery)
                d.message_id = msg.id
                how = msg.how
                if how == KEPT_AS_IS:
                    d.body = msg.data
                elif how == KEPT_FLAT:
                    d.body = msg.data.copy()
                else:
                    d.body = decode_json_text(msg.data)
                d.attempt = 1
                d.consumer_id = holder
                d.receipt = receipt
                d.priority = priority
                d.deadline = deadline
                d.published_at = msg.published_at
                out.append(d)
            if not fresh:
                del self._levels[self._order.pop(0)]
        if leases is self._stray:
            for d in out:
                msg = leases[d.receipt]
                msg.receipt = d.receipt
                self._stray_expiry.add(d.receipt, msg)
            if deadline < self._due:
                self._due = deadline
        if self._readers and deadline < self._timer_at:
            self._arm()
        return out

    @staticmethod
    def _delivery(msg: Msg, receipt: Receipt) -> Delivery:
        """A leased message's Delivery (off the fast path of `receive_nowait`)."""
        return Delivery(
            msg.id,
            kept_body(msg.data, msg.how),
            msg.attempt,
            msg.holder,
            receipt,
            msg.priority,
            msg.deadline,
            msg.published_at,
        )

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
        if self._writers:
            self._writers.wake()

    def _ack_off_path(self, receipt: Receipt, msg: Msg | None) -> Msg:
        """The rare acks: of a lease that expired unreaped (taken from _leases already),
        of a stray lease, or of no lease at all. Returns the message if the ack stands."""
        now = self.clock.now()
        if msg is not None:  # past its deadline: expired, unless the process was stalled
            if msg.deadline > self.expiry_now(now):
                return msg  # the loop was blocked, not the holder: the ack stands
            self._expire(receipt, msg, now)
            if self._readers:
                self._readers.wake_all()
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

    async def extend_many(self, receipts: Sequence[Receipt], seconds: float) -> list[float | None]:
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
            self._readers.wake_all()
        return n

    async def release_holder(self, holder: str, reason: str, error: str = "") -> int:
        """End every lease `holder` has."""
        held = self._by_holder.get(holder)
        n = await self.release(list(held), reason, error) if held else 0
        if held is not None and not held and self._by_holder.get(holder) is held:
            del self._by_holder[holder]
        return n

    async def close(self) -> None:
        """Wake everyone parked; further calls raise BrokerClosed."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._readers.wake_all()
        self._writers.wake_all()
