"""The Redis broker: competing consumers across processes and hosts, on Redis
Streams consumer groups.

One stream per priority level; every worker process joins one consumer group
under its own name. A reader task fetches batches (XREADGROUP COUNT, or BLOCK
when nothing is ready: no polling) into a local buffer; `receive` hands them out
without a round trip; acks are group-committed (see flusher). A lease
is the entry's pending state: its idle time is the lease clock, extended by
XCLAIM of our own entry. Workers heartbeat a key with a TTL; when one's key
expires, the others claim its pending entries at once (presence).
Expired leases are reclaimed with XAUTOCLAIM (min-idle = visibility timeout).

URL: redis://[user:pass@]host:port/db?queue=NAME&worker=NAME&ttl=S&fetch=N&timeout=S
(rediss:// for TLS). `ttl` is the heartbeat TTL (default 3 s), `fetch` the
batch size read at once (default 128), `timeout` the socket timeout (5 s).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from ccdash.backoff import Backoff
from ccdash.brokers.base import (
    REASON_RELEASED,
    Broker,
    BrokerClosed,
    BrokerError,
    DeadLetter,
    Delivery,
    QueueConfig,
    storable_text,
)
from ccdash.brokers.redis.closing import while_answering
from ccdash.brokers.redis.extending import Extender
from ccdash.brokers.redis.flusher import Flusher
from ccdash.brokers.redis.keys import Keys
from ccdash.brokers.redis.leases import LeaseOps
from ccdash.brokers.redis.link import LinkDown, RedisLink, evalsha, split_options
from ccdash.brokers.redis.local import LocalBook
from ccdash.brokers.redis.presence import Presence
from ccdash.brokers.redis.publishing import Publishing, WouldBlock
from ccdash.brokers.redis.reader import BLOCK_MS, Reader
from ccdash.brokers.redis.refusals import EndRefusals
from ccdash.brokers.redis.state import QueueState
from ccdash.brokers.redis.views import Snapshot, parse_stats
from ccdash.clock import Clock, MonotonicClock
from ccdash.waiters import Waiters

log = logging.getLogger("ccdash.redis")

OPTIONS = ("queue", "worker", "ttl", "fetch", "timeout")


def default_worker_name() -> str:
    """host-pid-random: unique per process across a fleet."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class RedisBroker(Publishing, LeaseOps, QueueState, Broker):
    """A leased queue on Redis Streams, shared by every process that opens it."""

    def __init__(
        self,
        url: str,
        config: QueueConfig | None = None,
        *,
        clock: Clock | None = None,
        queue: str = "default",
        worker: str | None = None,
        heartbeat_ttl: float = 3.0,
        fetch: int = 128,
        timeout: float = 5.0,
    ) -> None:
        from ccdash.brokers import redact_url

        self.config = config or QueueConfig()
        self.clock: Clock = clock or MonotonicClock()
        self.url = redact_url(url)
        self.keys = Keys(queue)
        self.worker = worker or default_worker_name()
        if not 0.3 <= heartbeat_ttl < self.config.visibility_timeout:
            raise ValueError(
                "heartbeat ttl must be at least 0.3 s and below the visibility timeout"
            )
        self.heartbeat_ttl = heartbeat_ttl
        self.fetch_size = max(1, fetch)
        self.timeout = timeout
        self.vt = self.config.visibility_timeout
        self.book = LocalBook()
        self.snap = Snapshot()
        self.offset = 0.0  # local monotonic minus Redis wall clock (seconds)
        self.presence_info: Callable[[], dict[str, Any]] | None = None
        self.lost_state_events = 0
        self._dead: list[DeadLetter] = []
        self._dlq_version = -1
        self._waiters = Waiters()  # wait_ready
        self._room_waiters = Waiters()  # publish when full
        self._dedup: dict[str, tuple[str, float]] = {}
        self._mid_prefix = secrets.token_hex(6)
        self._seq = 0
        self._closed = False
        self._opened = False
        self._last_lost = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self.link = RedisLink(url, timeout=timeout, name="main")
        self.flusher = Flusher(
            self.link,
            self.keys.prefix,
            worker=self.worker,
            vt_ms=int(self.vt * 1000),
            on_lost_state=self.on_lost_state,
            on_snapshot=self._on_snapshot,
            backoff=Backoff(),
            publisher=self._mid_prefix,
            stall_after=heartbeat_ttl / 2,
        )
        # The parked XREADGROUP BLOCK must end (BLOCK_MS) before its socket times out.
        self.reader = Reader(
            self, RedisLink(url, timeout=max(timeout, BLOCK_MS / 1000 + 2.0), name="block")
        )
        self.presence = Presence(self)
        self.extender = Extender(self.flusher.call, self.keys, self.worker)
        self.end_refusals = EndRefusals()  # nacks, defers, releases Redis refused

    @classmethod
    def from_url(
        cls,
        url: str,
        config: QueueConfig,
        *,
        clock: Clock | None = None,
        default_fetch: int = 128,
        **overrides: Any,
    ) -> RedisBroker:
        """A broker for `url` (not connected yet); our options come from its query,
        or from `overrides` (worker, ttl, fetch, ...) which win. `default_fetch` is the
        read-ahead when neither names one."""
        from ccdash.brokers import BrokerURLError, check_url, redact_url

        check_url(url)  # every option and range, before anything connects
        clean, opts = split_options(url, OPTIONS)
        opts.update({k: str(v) for k, v in overrides.items() if v is not None})
        try:
            return cls(
                clean,
                config,
                clock=clock,
                queue=opts.get("queue") or "default",
                worker=opts.get("worker") or None,
                heartbeat_ttl=float(opts.get("ttl", 3.0)),
                fetch=int(opts.get("fetch", default_fetch)),
                timeout=float(opts.get("timeout", 5.0)),
            )
        except ValueError as exc:
            raise BrokerURLError(f"bad redis broker URL {redact_url(url)!r}: {exc}") from None

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> None:
        """Connect (a clear error if Redis is unreachable) and start the tasks."""
        if self._opened:
            return
        try:
            await self.link.execute([("PING",)])
        except LinkDown as exc:
            await self.link.close()
            raise BrokerError(f"cannot reach Redis at {self.url}: {exc}") from None
        cfg = self.keys.config
        t0 = time.monotonic()
        *_, stats = await self.link.execute(
            [
                ("HSETNX", cfg, "visibility_timeout", str(self.vt)),
                ("HSETNX", cfg, "max_attempts", str(self.config.max_attempts)),
                evalsha("recover", self.keys.prefix, 0),  # level 0 exists: readers can block on it
                evalsha("stats", self.keys.prefix),
            ]
        )
        if isinstance(stats, Exception):
            raise BrokerError(
                f"Redis at {self.url} refused the broker's scripts: {self.link.describe(stats)}"
            )
        self.snap = parse_stats(stats, t0)
        self.offset = t0 - self.snap.redis_now
        self._opened = True
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(t, name=f"ccdash-redis-{n}")
            for n, t in (("flusher", self.flusher.run()), ("presence", self.presence.run()))
        ]  # keep order
        self.reader.start()
        self.flusher.want_stats = True
        self.flusher.kick()

    async def close(self) -> None:
        """Hand back what this worker holds, flush, leave the fleet, disconnect."""
        if self._closed:
            return
        self._closed = True
        closed = BrokerClosed("broker is closed")
        self._waiters.fail_all(closed)
        self._room_waiters.fail_all(closed)
        if not self._opened:
            await self.link.close()
            await self.reader.link.close()
            return
        since = time.monotonic()  # Redis silent this long from here: stop waiting for it
        await self.reader.stop(since)
        # No beat may follow the retire below (it would look like a worker back from the dead).
        self._tasks[1].cancel()
        await asyncio.gather(self._tasks[1], return_exceptions=True)
        back = self.book.drain_buffer() + [self.book.unlease(r) for r in list(self.book.leases)]
        items = [e for e in back if e is not None]
        if items:
            self._end(items, "g", REASON_RELEASED, "", 0.0, check_lease=False).add_done_callback(
                _consume
            )
        if self.presence.registered:
            self.flusher.fire(evalsha("retire", self.keys.prefix, self.worker))
        drain = max(10.0, 2 * self.timeout)
        if not await while_answering(self.flusher, self.flusher.drained(), cap=drain, since=since):
            log.error(
                "closing with Redis unreachable: %d publishes and %d acks not sent",
                len(self.flusher.outbox),
                len(self.flusher.acks),
            )
            self.flusher.abandon(BrokerClosed("broker closed before Redis stored the message"))
        await self.extender.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.link.close()

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerClosed("broker is closed")

    # -- writes (publishing itself is in publishing.py) ---------------------

    async def hand_back(self) -> int:
        """Give the read-ahead buffer back to the fleet now (attempts unused)."""
        entries = self.book.drain_buffer()
        if entries:
            fut = self._end(entries, "g", REASON_RELEASED, "", 0.0, check_lease=False)
            await self._ended(fut, len(entries))
        return len(entries)

    async def flush(self) -> None:
        """Wait until every publish and ack queued so far has reached Redis."""
        await self.flusher.sent()

    async def settled(self) -> None:
        """Wait until queued writes reached Redis and the reader has no fetch wanted or
        running (a parked BLOCK read ends within its bound): nothing changes this
        worker's buffer behind the caller's back."""
        self._check_open()
        await self.flusher.drained()
        await self.reader.idle.wait()

    # -- receiving ----------------------------------------------------------

    def ready_count(self) -> int:
        """Entries this worker has read and not yet handed out."""
        return self.book.buffered

    async def wait_ready(self) -> None:
        """Park until the reader has something (it blocks in Redis, not here)."""
        self._check_open()
        if self.book.buffered:
            return
        self.reader.want()
        await self._waiters.park()

    def has_waiters(self) -> bool:
        """Is a consumer parked in wait_ready?"""
        return bool(self._waiters)

    def fail_waiters(self, exc: BaseException) -> None:
        """Unpark wait_ready with an error."""
        self._waiters.fail_all(exc)

    def note_fetched(self, n: int) -> None:
        """The reader took `n` entries (on its own connection): ready -> in flight in the
        snapshot until the next read says so itself."""
        self.snap.ready = max(0, self.snap.ready - n)
        self.snap.in_flight += n

    async def keep_after_stall(self) -> None:
        """After a stall: extend the buffered entries' leases, run out or not."""
        await self.presence.keep_buffer()

    def wake_waiters(self) -> None:
        """The buffer has entries: unpark wait_ready."""
        self._waiters.wake_all()

    def fetched(self) -> None:
        """The reader buffered entries: the engine hands them out now, in the reader's
        task (`on_ready`: no dispatcher task to wake first); wait_ready is woken if
        some are left or the engine wants no more."""
        ready = self.on_ready
        if ready is None or not ready() or self.book.buffered:
            self._waiters.wake_all()

    async def receive(self, holders: Sequence[str]) -> list[Delivery]:
        """Lease up to len(holders) buffered entries."""
        return self.receive_nowait(holders)

    def receive_nowait(self, holders: Sequence[str]) -> list[Delivery]:
        """Hand out buffered entries, highest priority first; no round trip."""
        self._check_open()
        book = self.book
        now = self.clock.now()
        out: list[Delivery] = []
        offset = self.offset
        while book.buffered and len(out) < len(holders):
            entry = book.pop()
            if entry.deadline <= now:
                if entry.deadline <= self.expiry_now(now):
                    continue  # its lease ran out while buffered (not in a stall): Redis reclaims it
                # It ran out in a stall not dealt with yet: a peer may have taken it over
                # and finished it meanwhile. Held until keep_after_stall tells.
                book.hold(entry)
                continue
            try:
                out.append(book.lease(entry, holders[len(out)], offset))
            except (ValueError, RecursionError) as exc:  # a body ccdash did not write
                self.bury_undecodable(entry.level, entry.eid, f"body: {_why(exc)}")
        if book.buffered * 2 < self.fetch_size:
            self.reader.want()
        return out

    def bury_undecodable(self, level: bytes, eid: bytes, why: str) -> None:
        """An entry read from the stream does not decode: to the DLQ at once (reason
        `undecodable`, raw bytes kept), logged and told to the engine (an alert)."""
        why = storable_text(why, 300)
        where = f"{self.keys.level_stream(level)} {eid.decode(errors='replace')}"
        log.warning("undecodable entry %s dead-lettered: %s", where, why)
        self.flusher.fire(evalsha("bury", self.keys.prefix, level, eid, why))
        if self.on_event is not None:
            self.on_event("undecodable", {"entry": where, "error": why})


def _why(exc: BaseException) -> str:
    """An exception as a short reason (RecursionError says nothing of nesting)."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return f"{type(exc).__name__}: {exc}"


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


__all__ = ["RedisBroker", "WouldBlock", "default_worker_name"]
