"""A consumer: one long-lived task that handles its deliveries one at a time.

It holds at most `holding_limit` deliveries (buffered + in the handler), parks
on a future when it has none, and never creates a task per message. Sync
handlers run in a thread so they cannot stall heartbeats.

A consumer never sees the Engine: it gets a `ConsumerContext` whose parts it
reports to through the narrow Protocols below (the dispatcher's slots, the
handler guards, the pool).
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ccdash.brokers.base import Broker, Delivery, ReceiptRejected
from ccdash.clock import Clock
from ccdash.engine.errors import describe_error
from ccdash.engine.metrics import PENDING_LIMIT, LatencyHistogram
from ccdash.engine.states import LIVE_STATES, ConsumerState
from ccdash.hints import is_async_callable
from ccdash.waiters import Waiters

Handler = Callable[[Delivery], Awaitable[None]] | Callable[[Delivery], None]
BatchHandler = Callable[[list[Delivery]], Awaitable[Mapping[str, Any] | None]]

_EWMA_ALPHA = 0.3
TURN_EVERY = 0.01  # seconds of handling after which a busy consumer lets the loop turn
IDLE, PROCESSING = ConsumerState.IDLE, ConsumerState.PROCESSING


class Slots(Protocol):
    """Slot accounting as a consumer sees it (the dispatcher implements it)."""

    def refill(self, c: Consumer, n: int) -> bool:
        """`n` deliveries done; True if the caller should `await dispatch(c)`."""

    def has_spare(self, c: Consumer) -> None:
        """c, above its refill mark, has a spare slot now (it may take new work)."""

    async def dispatch(self, hint: Consumer | None) -> None:
        """Lease ready messages to hungry consumers."""


class Guard(Protocol):
    """The rate limit and circuit breakers as a consumer sees them."""

    @property
    def active(self) -> bool:
        """Any guard set at all (read once per consumer loop)."""

    @property
    def breakers(self) -> Mapping[str, object]:
        """The circuit breakers by message type; empty while none exists."""

    async def hold_back(self, d: Delivery) -> bool:
        """True if the delivery was deferred instead of handled now."""

    def succeeded(self, d: Delivery) -> None:
        """The handler succeeded on `d`."""

    def failed(self, d: Delivery) -> None:
        """The handler failed on `d`."""


class Reports(Protocol):
    """What a consumer tells its pool."""

    async def warmed(self, c: Consumer) -> None:
        """c finished its cold start and takes work from now on."""

    def ack_rejected(self, c: Consumer, d: Delivery) -> None:
        """c's lease of d ran out before its ack: the work is a duplicate."""

    def dead_lettered(self, c: Consumer, d: Delivery, error: str) -> None:
        """c's nack of d sent it to the DLQ."""


@dataclass(frozen=True, slots=True)
class ConsumerContext:
    """What every consumer of one engine shares: the clock, the broker, its settings
    and the parts it reports to."""

    clock: Clock
    broker: Broker
    ack_nowait: Callable[[Any], None] | None  # the broker's non-suspending ack, if any
    slots: Slots
    guards: Guard
    reports: Reports
    batch_handler: BatchHandler | None
    holding_limit: int
    batch_size: int
    batch_linger: float
    startup_delay: float
    handler_timeout: float | None
    latency: LatencyHistogram  # the pool's, which every consumer's histogram feeds

    @property
    def batching(self) -> bool:
        """Whether consumers hand batches to a batch handler."""
        return self.batch_handler is not None and self.batch_size > 1


class Consumer:
    """One competing consumer. The pool owns it; operators see it in snapshots."""

    def __init__(
        self, ctx: ConsumerContext, cid: str, ordinal: int, handler: Handler | None, version: str
    ) -> None:
        self.ctx = ctx
        self.id = cid
        self.ordinal = ordinal
        self.version = version
        self.handler = handler
        self.is_async = handler is not None and is_async_callable(handler)
        self.weight = 1
        self.held = 0  # buffered + in the handler; changed only by the dispatcher
        self.limit = ctx.holding_limit
        # Refill when down to half the limit; a batch consumer whenever it has room,
        # since it waits to fill its batch.
        self.low = self.limit - 1 if ctx.batching else self.limit // 2
        self.ewma = 0.0
        self.state = IDLE
        self.buffer: deque[Delivery] = deque()
        self.current: list[Delivery] = []
        self.started_at = 0.0  # when the handler in progress began
        self.processed = 0
        self.failed = 0
        self.hist = LatencyHistogram(parent=ctx.latency)  # feeds the pool's
        # Lower bound of the deadlines it holds (stale-low is fine: the health tick then
        # looks and finds nothing due); lets the tick skip consumers with nothing due.
        self.next_due = float("inf")
        self.last_beat = ctx.clock.now()
        self.hung = False
        self.warm = ctx.startup_delay <= 0  # cold consumers take no work yet
        self.draining = False
        self.slow_factor = 1.0
        self.ended_at: float | None = None
        self.note = ""
        self.task: asyncio.Task[None] | None = None
        self._idle = Waiters()  # the loop, parked for work (or to drain)
        self._timed_out = False

    # -- what the pool and the dispatcher call -------------------------------

    @property
    def accepting(self) -> bool:
        """May be given work (a hung consumer still looks fine until detected)."""
        return self.state in LIVE_STATES and not self.draining and self.warm

    @property
    def room(self) -> int:
        """How many more deliveries it should be given now: none until it is down to
        half its limit, then enough to fill it (refills come in batches)."""
        if self.held > self.low or not self.accepting:
            return 0
        return self.limit - self.held

    @property
    def p50(self) -> float | None:
        """Median latency of the recent window (computed when read, then cached)."""
        return self.hist.p50_p99()[0]

    @property
    def p99(self) -> float | None:
        """99th percentile latency of the recent window."""
        return self.hist.p50_p99()[1]

    def give(self, delivery: Delivery) -> None:
        """Hand over a leased delivery (its slot was reserved by the dispatcher)."""
        self.buffer.append(delivery)
        if delivery.deadline < self.next_due:
            self.next_due = delivery.deadline
        if self._idle:  # inline `wake`: per message
            self._idle.wake_all()

    def wake(self) -> None:
        """Unpark the loop if it waits for work."""
        if self._idle:
            self._idle.wake_all()

    def held_deliveries(self) -> list[Delivery]:
        """Everything this consumer holds a lease for."""
        return [*self.current, *self.buffer]

    def time_out(self) -> None:
        """Cancel the handler in progress; it is nacked as timed out."""
        if self.current and self.task is not None and not self._timed_out:
            self._timed_out = True
            self.task.cancel()

    # -- the loop -----------------------------------------------------------

    async def run(self) -> None:
        """Handle deliveries until drained (returns) or cancelled (killed, failed)."""
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        if not self.warm:  # a cold start (connections, caches) before taking work
            await ctx.clock.sleep(ctx.startup_delay)
            await ctx.reports.warmed(self)
        if ctx.batching:
            busy = 0.0  # its own handling since it last let the loop turn (as in _run_single)
            while await self._next(loop):
                await self._handle_batch()
                busy += ctx.clock.now() - self.started_at
                if busy > TURN_EVERY:
                    busy = 0.0
                    await asyncio.sleep(0)
        else:
            await self._run_single(loop)

    async def _next(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Wait until there is something buffered (True) or it is drained (False)."""
        while True:
            if self.hung:
                await loop.create_future()  # stalls until the health check fails us
            if self.buffer:
                return True
            if self.draining:
                return False
            self.state = IDLE
            await self._idle.park()

    async def _run_single(self, loop: asyncio.AbstractEventLoop) -> None:
        """One delivery at a time. The hot path, inline for the interpreter (no coroutine
        per message but the handler's own; slot accounting only at the refill mark)."""
        ctx = self.ctx
        now = ctx.clock.now
        buffer = self.buffer
        current = self.current
        handler = self.handler
        is_async = self.is_async
        guards = ctx.guards
        guarded = guards.active
        breakers = guards.breakers
        ack_nowait = ctx.ack_nowait
        slots = ctx.slots
        timings = self.hist.pending  # latencies, binned by the histogram in batches
        timed = timings.append
        turned = now()
        while True:
            if not buffer or self.hung:
                if not await self._next(loop):
                    return  # drained
                turned = now()  # only its own handling counts toward a turn
            d = buffer.popleft()
            if guarded and await guards.hold_back(d):
                if slots.refill(self, 1):
                    await slots.dispatch(self)
                continue
            self.state = PROCESSING
            current.append(d)
            self.started_at = t0 = now()
            error: str | None = None
            try:
                if is_async:
                    await handler(d)  # type: ignore[misc]
                elif handler is not None:
                    result = await asyncio.to_thread(handler, d)
                    if inspect.isawaitable(result):  # a sync wrapper of an async handler
                        await result
            except asyncio.CancelledError:
                error = self._timeout_error("handler")
            except KeyboardInterrupt:
                raise  # Ctrl-C: a stop request, not a failed delivery
            except BaseException as exc:  # sys.exit (argparse on a bad message), pytest's
                error = describe_error(exc)  # fail, gevent's Timeout: that delivery failed
            t1 = now()
            if self.slow_factor > 1.0 or self.hung:
                t1 = await self._finish_run(t0, t1)
            current.clear()
            self.last_beat = t1
            if error is None and ack_nowait is not None:
                try:
                    ack_nowait(d.receipt)
                except ReceiptRejected:
                    ctx.reports.ack_rejected(self, d)
                t1 -= t0  # _count_success, inline: once per message
                self.processed += 1
                timed(t1)
                if len(timings) >= PENDING_LIMIT:
                    self.hist.digest()
                self.ewma += _EWMA_ALPHA * (t1 - self.ewma)
                if breakers:
                    guards.succeeded(d)
            elif error is None:
                await self._acked(d, t1 - t0)
            else:
                await self._failed(d, error, t1 - t0)
            held = self.held - 1
            if held > self.low:  # still above the refill mark: no one's room changes
                self.held = held
                if held == self.limit - 1:  # a spare slot: new work may come here
                    slots.has_spare(self)
            elif slots.refill(self, 1):
                await slots.dispatch(self)
            if t0 - turned > TURN_EVERY:  # handlers that never suspend, on a backlog: the
                await asyncio.sleep(0)  # loop would not turn (timers, signals) until drained
                turned = now()  # (the others' time meanwhile is not its handling)

    def _timeout_error(self, what: str) -> str:
        """Inside `except CancelledError`: our own timeout becomes an error text, and so
        does one nobody sent this task (the handler awaited a task that was cancelled);
        any other cancellation (kill, shutdown) propagates."""
        if not self._timed_out:
            task = asyncio.current_task()
            if task is not None and not task.cancelling():
                return f"CancelledError: raised inside the {what}, not a cancellation"
            raise  # re-raises the CancelledError being handled
        self._timed_out = False
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
        return f"HandlerTimeout: {what} ran over {self.ctx.handler_timeout}s"

    async def _finish_run(self, t0: float, t1: float) -> float:
        """After a handler run (t0 to t1): apply a drill's slowdown, stall if hung;
        returns the end time."""
        clock = self.ctx.clock
        if self.slow_factor > 1.0:  # a drill slowed this consumer down
            await clock.sleep((t1 - t0) * (self.slow_factor - 1.0))
            t1 = clock.now()
        if self.hung:  # a hung consumer never gets to ack
            await asyncio.get_running_loop().create_future()
        return t1

    async def _acked(self, d: Delivery, elapsed: float) -> None:
        ctx = self.ctx
        try:
            await ctx.broker.ack(d.receipt)
        except ReceiptRejected:
            ctx.reports.ack_rejected(self, d)
        self._count_success(d, elapsed, ctx.guards.breakers)

    def _count_success(self, d: Delivery, elapsed: float, breakers: Mapping[str, object]) -> None:
        self.processed += 1
        self.hist.record(elapsed)
        self.ewma += _EWMA_ALPHA * (elapsed - self.ewma)
        if breakers:
            self.ctx.guards.succeeded(d)

    async def _failed(self, d: Delivery, error: str, elapsed: float) -> None:
        ctx = self.ctx
        self.failed += 1
        self.hist.record(elapsed)  # failed runs took time too
        try:
            dead = await ctx.broker.nack(d.receipt, error)
        except ReceiptRejected:
            return
        ctx.guards.failed(d)
        if dead:
            ctx.reports.dead_lettered(self, d, error)

    async def _handle_batch(self) -> None:
        ctx = self.ctx
        clock = ctx.clock
        size = ctx.batch_size
        deadline = clock.now() + ctx.batch_linger
        while len(self.buffer) < size and clock.now() < deadline and not self.draining:
            await self._idle.park_until(clock, deadline)
        batch = [self.buffer.popleft() for _ in range(min(size, len(self.buffer)))]
        if not batch:
            return
        self.state = PROCESSING
        self.current.extend(batch)
        self.started_at = t0 = clock.now()
        failures: Mapping[str, Any] = {}
        whole: str | None = None
        try:
            result = await ctx.batch_handler(list(batch))  # type: ignore[misc]
            failures = result or {}
        except asyncio.CancelledError:
            whole = self._timeout_error("batch")
        except KeyboardInterrupt:
            raise  # re-raises the CancelledError being handled
        except BaseException as exc:
            whole = describe_error(exc)
        t1 = await self._finish_run(t0, clock.now())
        self.current.clear()
        self.last_beat = t1
        per_message = (t1 - t0) / len(batch)
        for d in batch:
            err = whole if whole is not None else failures.get(d.message_id)
            if err is None:
                await self._acked(d, per_message)
            else:
                text = err if isinstance(err, str) else describe_error(err)
                await self._failed(d, text or "failed", per_message)
        if ctx.slots.refill(self, len(batch)):
            await ctx.slots.dispatch(self)

    def note_state(self) -> ConsumerState:
        """The state to show (draining wins while it lasts)."""
        if self.draining and self.state in LIVE_STATES:
            return ConsumerState.DRAINING
        return self.state
