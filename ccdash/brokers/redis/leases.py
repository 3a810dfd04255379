"""Ending leases on the Redis broker: ack (group-committed or confirmed), nack,
defer, extend, release. A mixin of RedisBroker, kept apart for size."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from ccdash.brokers.base import REASON_RELEASED, Receipt, ReceiptRejected, storable_text
from ccdash.brokers.redis.link import evalsha, is_nogroup
from ccdash.brokers.redis.local import Entry, Held

if TYPE_CHECKING:
    from ccdash.brokers.base import QueueConfig
    from ccdash.brokers.redis.extending import Extender
    from ccdash.brokers.redis.flusher import Flusher
    from ccdash.brokers.redis.keys import Keys
    from ccdash.brokers.redis.local import LocalBook
    from ccdash.brokers.redis.reader import Reader
    from ccdash.brokers.redis.refusals import EndRefusals
    from ccdash.clock import Clock


log = logging.getLogger("ccdash.redis")

# Leases per end script call: closing with 100k leases held must not hold Redis (and
# every other worker) for seconds in one call.
END_CHUNK = 500

# The idle limit sent to Redis while this process is stalled: none (a lease that ran
# out in the stall only is still ours; Redis still checks it was not delivered again).
NO_IDLE_LIMIT = 2**40


class LeaseOps:
    """ack / nack / defer / extend / release for RedisBroker."""

    book: LocalBook
    clock: Clock
    config: QueueConfig
    end_refusals: EndRefusals
    extender: Extender
    flusher: Flusher
    keys: Keys
    reader: Reader
    vt: float
    worker: str

    if TYPE_CHECKING:

        def wake_waiters(self) -> None: ...

        def expiry_now(self, now: float) -> float: ...

    def idle_limit_ms(self) -> int:
        """The lease limit Redis checks our leases' idle time against: the visibility
        timeout, or none while the process is stalled (see Broker.stall_guard)."""
        now = self.clock.now()
        return int(self.vt * 1000) if self.expiry_now(now) >= now else NO_IDLE_LIMIT

    def _take(self, receipt: Receipt) -> Entry:
        entry = self.book.unlease(receipt)
        if entry is None:
            raise ReceiptRejected(f"receipt {receipt!r} is not a live lease")
        if entry.deadline <= self.expiry_now(self.clock.now()):  # not while stalled
            raise ReceiptRejected(f"receipt {receipt!r}: the lease expired")
        return entry

    def ack_nowait(self, receipt: Receipt) -> None:
        """Ack, group-committed: checked here, confirmed by Redis in the next batch."""
        entry = self._take(receipt)
        if entry.deadline <= self.clock.now():  # ran out in a stall only: no idle limit
            self.flusher.call(
                evalsha(
                    "ack",
                    self.keys.prefix,
                    self.worker,
                    NO_IDLE_LIMIT,
                    entry.level,
                    entry.eid,
                    entry.count,
                )
            ).add_done_callback(_refused_late)
            return
        fl = self.flusher
        if not fl.acks:
            fl.acks_since = time.monotonic()
        fl.acks.append(entry.ack_args)
        fl.kick()

    async def ack(self, receipt: Receipt) -> None:
        """Ack and wait for Redis to confirm the lease was still ours."""
        if await self.ack_many([receipt]):
            raise ReceiptRejected(f"receipt {receipt!r} is not a live lease")

    async def ack_many(self, receipts: Sequence[Receipt]) -> list[Receipt]:
        """Ack several in one check-and-ack script; returns the rejected receipts."""
        rejected: list[Receipt] = []
        taken: list[tuple[Receipt, Entry]] = []
        for r in receipts:
            try:
                taken.append((r, self._take(r)))
            except ReceiptRejected:
                rejected.append(r)
        if taken:
            args: list[Any] = []
            for _, e in taken:
                args += (e.level, e.eid, e.count)
            bad = await self._lease_op(
                evalsha("ack", self.keys.prefix, self.worker, self.idle_limit_ms(), *args)
            )
            if bad is None:
                rejected += [r for r, _ in taken]
            else:
                rejected += [taken[int(i) - 1][0] for i in bad]
        return rejected

    async def _lease_op(self, cmd: tuple[Any, ...]) -> Any:
        """Run a lease operation; None when Redis lost the group (every lease is gone)."""
        try:
            return await self.flusher.call(cmd)
        except ResponseError as exc:
            if is_nogroup(exc):
                return None
            raise

    def _end(
        self,
        entries: Sequence[Entry],
        mode: str,
        reason: str,
        error: str,
        delay: float,
        *,
        check_lease: bool = True,
    ) -> asyncio.Future[Any]:
        args: list[Any] = []
        error = storable_text(error)
        for e in entries:
            holder = f"{self.worker}:{e.holder}" if e.holder else self.worker
            args += (
                e.level,
                e.eid,
                e.count,
                mode,
                reason,
                error,
                holder,
                max(0, int(round(delay * 1000))),
            )
        vt_ms = self.idle_limit_ms() if check_lease else 0
        self.reader.changed()  # a retry's due time, a message given back: a fetch reads them
        calls = [
            self.flusher.call(
                evalsha(
                    "end",
                    self.keys.prefix,
                    self.worker,
                    vt_ms,
                    self.config.max_attempts,
                    *args[k : k + 8 * END_CHUNK],
                )
            )
            for k in range(0, len(args), 8 * END_CHUNK)
        ]
        return calls[0] if len(calls) == 1 else _joined(calls)

    async def _ended(self, fut: asyncio.Future[Any], n: int = 1) -> list[Any]:
        """The replies of `n` lease ends; b"refused" each when Redis refused the call (a
        read-only replica): it stored nothing, the leases stay with Redis (see
        refusals.py). Not the caller's failure: a consumer is never failed for it."""
        try:
            out = list(await fut)
        except ResponseError as exc:
            if is_nogroup(exc):
                return [b"rejected"] * n
            self.end_refusals.refused(n, self.flusher.link.describe(exc))
            return [b"refused"] * n
        self.end_refusals.stored()
        return out

    async def nack(self, receipt: Receipt, error: str = "", *, delay: float | None = None) -> bool:
        """Retry after a backoff (a delayed ZSET), or dead-letter at max_attempts."""
        entry = self._take(receipt)
        wait = self.config.backoff(entry.attempt) if delay is None else delay
        [out] = await self._ended(self._end([entry], "f", "failed", error, wait))
        if out == b"rejected":
            raise ReceiptRejected(f"receipt {receipt!r} is not a live lease")
        return bool(out == b"dead")  # refused: back after the visibility timeout

    async def defer(self, receipt: Receipt, delay: float) -> None:
        """Back unhandled after `delay`; the attempt is given back."""
        entry = self._take(receipt)
        [out] = await self._ended(self._end([entry], "g", REASON_RELEASED, "", delay))
        if out == b"rejected":
            raise ReceiptRejected(f"receipt {receipt!r} is not a live lease")

    async def extend(self, receipt: Receipt, seconds: float) -> float:
        """Move the lease deadline to now + seconds (at most one visibility timeout:
        the lease is the entry's idle time, which XCLAIM can only reset)."""
        [deadline] = await self.extend_many([receipt], seconds)
        if deadline is None:
            raise ReceiptRejected(f"receipt {receipt!r} is not a live lease")
        return deadline

    async def extend_many(self, receipts: Sequence[Receipt], seconds: float) -> list[float | None]:
        """Extend several leases; None for each lease that is gone. Extensions asked for
        while others are on their way go together in the next round (one pipeline of
        XCLAIMs: see extending.py)."""
        now = self.clock.now()
        judge = self.expiry_now(now)  # a lease that ran out in a stall is still ours
        secs = min(max(0.0, seconds), self.vt)
        out: list[float | None] = [None] * len(receipts)
        book = self.book
        leases = book.leases
        live: list[Held] = []
        for i, r in enumerate(receipts):
            key = str(r)
            entry = leases.get(key)
            if entry is None or entry.deadline <= judge:
                book.unlease(key)
            else:
                live.append((i, key, entry))
        # Coalesced with the other extensions asked for meanwhile; Redis confirms each
        # is still pending, the lease clock was checked here (extending.py).
        flags = await self.extender.extend(live, int((self.vt - secs) * 1000))
        deadline = now + secs
        done: list[tuple[str, Entry]] = []
        for (i, r, e), flag in zip(live, flags, strict=True):
            if flag == 49 and leases.get(r) is e:  # b"1", and not acked meanwhile
                done.append((r, e))
                out[i] = deadline
            else:
                book.unlease(r)
        book.extended(done, deadline)
        return out

    async def release(self, receipts: Sequence[Receipt], reason: str, error: str = "") -> int:
        """End leases at once: handed back unhandled (REASON_RELEASED) they stay in
        this worker's buffer for its other consumers; otherwise the attempt counts
        and Redis puts them back for every worker (or in the DLQ)."""
        now = self.expiry_now(self.clock.now())
        live = []
        for r in receipts:
            entry = self.book.unlease(r)
            if entry is not None and entry.deadline > now:
                live.append(entry)
        if not live:
            return 0
        if reason == REASON_RELEASED:
            for entry in reversed(live):
                self.book.give_back(entry)
            self.wake_waiters()
        else:
            await self._ended(self._end(live, "f", reason, error, 0.0), len(live))
        return len(live)

    async def release_holder(self, holder: str, reason: str, error: str = "") -> int:
        """`release` every lease `holder` has."""
        return await self.release(self.book.holder_receipts(holder), reason, error)


def _joined(calls: list[asyncio.Future[Any]]) -> asyncio.Future[Any]:
    """One future of the replies of several end script calls, in order."""
    out: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def done(all_: asyncio.Future[list[Any]]) -> None:
        if out.done():
            return
        if all_.cancelled():
            out.cancel()
        elif (exc := all_.exception()) is not None:
            out.set_exception(exc)
        else:
            out.set_result([r for part in all_.result() for r in part])

    asyncio.gather(*calls).add_done_callback(done)
    return out


def _refused_late(fut: asyncio.Future[Any]) -> None:
    """A stall-forgiven ack's reply: a refusal means the lease was lost after all."""
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is not None:
        log.warning("an ack after a stall failed: %s", exc)
    elif fut.result():
        log.warning("an ack after a stall was refused: the lease was lost meanwhile")
