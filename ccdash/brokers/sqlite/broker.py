"""The durable SQLite broker: every queue semantic in one file that survives a crash.

    sqlite:///relative.db   sqlite:////abs/path.db   ...?durability=full|normal|off

Mutations go to one writer thread that commits them in batches (group commit,
`writer`); each awaiting caller resumes once its batch is committed.
Views read the file on the loop (WAL readers never wait). The counts the engine
asks for per message (`ready_count`, `outstanding`) come from the counters as of
our newest commit, which every batch re-reads, so they include other processes
sharing the file. `wait_ready` parks: our publishes, nacks and releases wake it,
a timer wakes it at the next retry or lease deadline, and while it is parked a
re-check every RECHECK seconds notices what other processes wrote (and, once a
second, has the writer look for processes that died holding leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

from ccdash.aio import in_daemon_thread
from ccdash.brokers.base import (
    Broker,
    BrokerClosed,
    BrokerError,
    DeadLetter,
    Delivery,
    QueueConfig,
    QueueFull,
    QueueStats,
    Receipt,
    ReceiptRejected,
    encode_body,
    storable_text,
)
from ccdash.brokers.sqlite import views
from ccdash.brokers.sqlite.broker_views import BrokerViews
from ccdash.brokers.sqlite.frame import HOUSEKEEPING_EVERY
from ccdash.brokers.sqlite.link import Link
from ccdash.brokers.sqlite.parking import Parking
from ccdash.brokers.sqlite.schema import SqliteOpenError, SqliteTarget, connect, parse_url
from ccdash.brokers.sqlite.store import FULL, close_opened, open_store
from ccdash.brokers.sqlite.writer import Checkpointer, Writer
from ccdash.clock import Clock, MonotonicClock

log = logging.getLogger("ccdash.brokers.sqlite")


RECHECK = 0.5  # seconds between looks at the file while parked (other processes' writes)
_TOTALS = ("published", "acked", "dead_lettered", "redelivered")
_UNBOUNDED = 1 << 30


class SqliteBroker(BrokerViews, Broker):
    """A leased queue with retries, DLQ, priorities, dedup and backpressure in one
    SQLite file, shared safely by several processes."""

    def __init__(
        self,
        target: SqliteTarget | str,
        config: QueueConfig | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.target = target if isinstance(target, SqliteTarget) else SqliteTarget(target)
        self.path = self.target.path
        self.url = f"sqlite:///{self.path}"
        self.config = config or QueueConfig()
        self.clock: Clock = clock or MonotonicClock()
        self.owner = secrets.token_hex(4)  # this instance, in lease rows and message ids
        self._ids = itertools.count(1)
        # Wall time = clock time + offset: deadlines are stored as wall-clock times so they
        # survive a restart or reboot, yet the injected clock drives them. A dyadic offset
        # keeps round numbers exact through the conversion.
        self.offset = round((time.time() - self.clock.now()) * 1024) / 1024
        self._link: Link = None  # type: ignore[assignment]  # set by open()
        self._read: Any = None  # the loop's own connection, for views
        self._park = Parking(self.clock, self._on_timer, lambda: self._arm(parking=True))
        self._publishing = 0  # awaited publishes under way
        self._base = dict.fromkeys(_TOTALS, 0)  # totals count from this open on
        self._last: tuple[QueueStats, list[DeadLetter]] | None = None  # views once closed
        self._next_housekeeping = 0.0
        self._closed = False
        self._closing: asyncio.Future[None] | None = None  # done once close() has finished

    @classmethod
    def from_url(
        cls, url: str, config: QueueConfig | None = None, *, clock: Clock | None = None
    ) -> SqliteBroker:
        """A broker for `sqlite:///FILE.db[?durability=...]` (not opened yet)."""
        return cls(parse_url(url), config, clock=clock)

    # -- opening and closing ------------------------------------------------

    async def open(self) -> None:
        """Check and open the file (in a thread) and start the writer."""
        if self._link is None:
            # Not to_thread: an open waiting for a lock must not hold up a Ctrl-C'd exit.
            opened = await in_daemon_thread(self._open_files, close_opened)
            if self._link is None:
                self._start(*opened)
            else:  # opened meanwhile (a call before this open finished): keep that one
                close_opened(opened)

    def _open_files(self) -> Any:
        if self._closed:
            raise BrokerClosed("broker is closed")
        return open_store(self.target, self.config, self.owner, self.offset, self.clock.now())

    def _start(self, store: Any, read: Any, counters: dict[str, int]) -> None:
        loop = asyncio.get_running_loop()
        read.text_factory = views.tolerant_text  # the writer's reads stay strict
        self._read = read
        self._base = {k: counters[k] for k in _TOTALS}
        checkpointer = Checkpointer(connect(self.target), self.path)
        writer = Writer(store, self.path, loop, self._deliver, checkpointer, self._tell)
        self._link = Link(writer, store, loop, counters, store.due, self._on_change)
        checkpointer.start()
        writer.start()

    def _deliver(self, *args: Any) -> None:
        self._link.deliver(*args)

    def _tell(self, kind: str, fields: dict[str, Any]) -> None:
        """An event for whoever listens (the engine): store-busy, undecodable, ..."""
        if self.on_event is not None:
            self.on_event(kind, fields)

    def _ready(self) -> Link:
        """The link to the writer, opening the file first if open() was not awaited."""
        link = self._link
        if link is None:
            if self._closed:
                raise BrokerClosed("broker is closed")
            self._start(*self._open_files())
            link = self._link
        if self._closed:
            raise BrokerClosed("broker is closed")
        if link.broken is not None:
            raise BrokerError(str(link.broken))
        return link

    async def close(self) -> None:
        """Hand back this instance's leases, commit what is queued, stop the writer."""
        if self._closed:
            return
        if self._link is not None and self._read is not None:  # unreadable: closes all the same
            with contextlib.suppress(BrokerError), views.read_errors(self.path):
                self._last = (self.stats(), self.dead_letters(1000))
        self._closed = True
        closing = self._closing = asyncio.get_running_loop().create_future()
        self._park.cancel()
        self._park.wake_all()
        link = self._link
        try:
            if link is not None:
                with contextlib.suppress(BrokerError):  # logged by the writer; leases expire
                    await link.call(link.store.unregister, self.clock.now())
                link.writer.stop()
                await asyncio.to_thread(link.writer.join)
                self._read.close()
                self._read = None
        finally:
            closing.set_result(None)

    async def flush(self) -> None:
        """Return once everything queued so far (publish_nowait too) is committed;
        BrokerError if some of it could not be stored."""
        if self._link is not None:
            await self._link.stored()

    def busy(self) -> bool:
        """Whether operations are queued or being committed, or a close is under way."""
        return (self._link is not None and self._link.pending()) or (
            self._closing is not None and not self._closing.done()
        )

    async def settled(self) -> None:
        """Return once `busy()` is false (tests settle on it; work on the writer thread
        is invisible to the event loop's own idea of idle)."""
        if self._link is not None:
            await self._link.drained()
        if self._closing is not None:
            await asyncio.shield(self._closing)

    # -- publishing -----------------------------------------------------------

    def _room(self, now: float) -> int:
        """Free places on a bounded queue (dead messages do not count; nor does a
        last-attempt lease past its deadline, which is dead already)."""
        cap = self.config.capacity
        if cap is None:
            return _UNBOUNDED
        link = self._link
        c = link.counters
        free = cap - (c["ready"] + c["delayed"] + c["leased"] + len(link.staged) + self._publishing)
        if free <= 0 and self._read is not None:  # look closer, at the file
            with views.read_errors(self.path):
                c, (_, _, last), unseen = link.read_file(
                    self._read, now + self.offset, self.config.max_attempts
                )
            free = cap - (
                c["ready"] + c["delayed"] + c["leased"] - last + unseen + self._publishing
            )
        return free

    def _duplicate_of(self, dedup_id: str | None, now: float) -> str | None:
        if dedup_id is None:
            return None
        staged = self._link.staged_dedup.get(dedup_id)
        if staged is not None and staged[1] > now:
            return staged[0]
        with views.read_errors(self.path):
            return views.duplicate_of(self._read, dedup_id, now + self.offset)

    async def publish(self, body: Any, *, priority: int = 0, dedup_id: str | None = None) -> str:
        """Accept a message; returns once it is committed. Waits while the queue is full."""
        data, is_json = encode_body(body, self.config.max_body_bytes)
        if dedup_id is not None:
            dedup_id = storable_text(dedup_id, None)
        while True:
            link = self._ready()
            now = self.clock.now()
            if self._room(now) <= 0 and self._duplicate_of(dedup_id, now) is None:
                await self._park.park_writer()
                continue
            mid = f"{self.owner}-{next(self._ids)}"
            op = (now, mid, data, is_json, priority, dedup_id, False, self._judge_now())
            self._publishing += 1
            try:
                mid = await link.call(link.store.publish, *op)
            finally:
                self._publishing -= 1
            if mid is not FULL:
                return mid  # type: ignore[no-any-return]
            # Another process took the room first: wait like everyone else.

    def publish_nowait(self, body: Any, *, priority: int = 0, dedup_id: str | None = None) -> str:
        """Accept a message now (or raise QueueFull); it is committed with the next batch
        (`await publish()` returns only once it is; `flush()` waits for everything)."""
        link = self._ready()
        now = self.clock.now()
        if dedup_id is not None:
            dedup_id = storable_text(dedup_id, None)
        known = self._duplicate_of(dedup_id, now)
        if known is not None:
            return known
        if self._room(now) <= 0:
            raise QueueFull(f"queue is full ({self.config.capacity} messages)")
        data, is_json = encode_body(body, self.config.max_body_bytes)
        mid = f"{self.owner}-{next(self._ids)}"
        link.stage(
            (now, mid, data, is_json, priority, dedup_id, True, self._judge_now()),
            dedup_id,
            mid,
            now + self.config.dedup_window,
        )
        self._park.wake_readers()
        return mid

    # -- receiving ------------------------------------------------------------

    async def wait_ready(self) -> None:
        """Park until something may be ready (see the module docstring)."""
        if self._closed:
            raise BrokerClosed("broker is closed")
        if self.ready_count():
            return
        self._link.refresh(self._read)
        if self.ready_count():
            return
        await self._park.park_reader()

    async def receive(self, holders: Sequence[str]) -> list[Delivery]:
        """Lease up to len(holders) ready messages, in one transaction."""
        link = self._ready()
        if not holders:
            return []
        out: list[Delivery] = await link.call(
            link.store.receive, self._judge_now(), list(holders), self.clock.now()
        )
        undecodable = link.store.undecodable
        while undecodable:
            mid, why = undecodable.popleft()
            log.warning(
                "sqlite broker %s: undecodable message %s dead-lettered: %s", self.path, mid, why
            )
            self._tell("undecodable", {"entry": mid, "error": why})
        return out

    # -- ending leases ----------------------------------------------------------

    def _judge_now(self) -> float:
        """The time leases are judged at: the clock's, held back while the process is
        stalled (the store reaps and checks leases as of then; see Broker.stall_guard)."""
        return self.expiry_now(self.clock.now())

    async def _call(self, name: str, *args: Any) -> Any:
        link = self._ready()
        return await link.call(getattr(link.store, name), self._judge_now(), *args)

    async def ack(self, receipt: Receipt) -> None:
        """Delete the leased message; returns once that is committed."""
        await self._call("ack", receipt)

    async def ack_many(self, receipts: Sequence[Receipt]) -> list[Receipt]:
        """Ack several in one commit; returns the rejected receipts."""
        link = self._ready()
        now = self._judge_now()
        results = await asyncio.gather(
            *[link.call(link.store.ack, now, r) for r in receipts], return_exceptions=True
        )
        for res in results:
            if isinstance(res, BaseException) and not isinstance(res, ReceiptRejected):
                raise res
        return [
            r for r, res in zip(receipts, results, strict=True) if isinstance(res, ReceiptRejected)
        ]

    async def nack(self, receipt: Receipt, error: str = "", *, delay: float | None = None) -> bool:
        """Retry after a backoff (or `delay`), or dead-letter at max_attempts."""
        return await self._call("nack", receipt, storable_text(error), delay)  # type: ignore[no-any-return]

    async def defer(self, receipt: Receipt, delay: float) -> None:
        """Back unhandled, visible after `delay`; the attempt is given back."""
        await self._call("defer", receipt, delay)

    async def extend(self, receipt: Receipt, seconds: float) -> float:
        """Move a live lease's deadline to now + seconds."""
        now = self.clock.now()  # judged as of the judging time, extended from now
        return await self._call("extend", receipt, seconds + now - self._judge_now())  # type: ignore[no-any-return]

    async def release(self, receipts: Sequence[Receipt], reason: str, error: str = "") -> int:
        """End these leases; the messages are visible again at once."""
        return await self._call("release", list(receipts), reason, storable_text(error))  # type: ignore[no-any-return]

    async def release_holder(self, holder: str, reason: str, error: str = "") -> int:
        """End every lease this instance gave `holder`."""
        return await self._call("release_holder", holder, reason, storable_text(error))  # type: ignore[no-any-return]

    async def redrive(self, ids: Sequence[str] | None = None) -> int:
        """Back to the queue with attempts reset, at the tail of their priority."""
        return await self._call("redrive", None if ids is None else list(ids))  # type: ignore[no-any-return]

    async def purge(self, ids: Sequence[str] | None = None) -> int:
        """Delete dead messages for good."""
        return await self._call("purge", None if ids is None else list(ids))  # type: ignore[no-any-return]

    # -- waking the parked ----------------------------------------------------------

    def _on_change(self) -> None:
        """After every batch: wake readers if there is work, publishers if there is room."""
        park = self._park
        if not park:
            return
        link = self._link
        if park.readers and link.counters["ready"] + len(link.staged) > 0:
            park.wake_readers()
        if park.writers:
            park.wake_writers(self._room(self.clock.now()))
        self._arm()

    def _arm(self, parking: bool = False) -> None:
        """While anyone is parked or `parking`: the timer at the next deadline (<= RECHECK)."""
        if self._closed or not (parking or self._park):
            return
        when = self.clock.now() + RECHECK
        if self._link.kick_op is None:
            when = min(when, self._link.due - self.offset)
        self._park.arm(when)

    def _on_timer(self) -> None:
        if self._closed:
            return
        link = self._link
        now = self._judge_now()
        if now + self.offset >= link.due:
            # A retry came due or a lease ran out: have the writer reap it; meanwhile the
            # parked look again (the views count it already).
            link.kick(now)
            self._park.wake_readers()
            self._park.wake_writers(self._room(now))
            self._arm()
        else:
            link.refresh(self._read)
            if now >= self._next_housekeeping:  # notice processes that died holding leases
                self._next_housekeeping = now + HOUSEKEEPING_EVERY
                link.kick(now)
            self._on_change()
            self._arm()


__all__ = ["SqliteBroker", "SqliteOpenError", "RECHECK"]
