"""A consumer: one long-lived task that handles its deliveries one at a time.

It holds at most `holding_limit` deliveries (buffered + in the handler), parks
on a future when it has none, and never creates a task per message. Sync
handlers run in a thread so they cannot stall heartbeats.

A consumer never sees the Engine: it gets a `ConsumerContext` whose parts it
reports to through narrow Protocols (consumer_context.py).
"""

from __future__ import annotations

import asyncio
from collections import deque

from ccdash.brokers.base import Delivery, ReceiptRejected
from ccdash.engine.consumer_context import ConsumerContext, Handler
from ccdash.engine.metrics import PENDING_LIMIT, LatencyHistogram
from ccdash.engine.states import LIVE_STATES, ConsumerState
from ccdash.hints import is_async_callable
from ccdash.interrupts import call_in_thread, describe_error, is_stop_request
from ccdash.waiters import Waiters

TURN_EVERY = 0.01  # seconds of handling after which a busy consumer lets the loop turn
IDLE, PROCESSING = ConsumerState.IDLE, ConsumerState.PROCESSING


class Consumer:
    """One competing consumer. The pool owns it; operators see it in snapshots."""

    def __init__(
        self,
        ctx: ConsumerContext[Consumer],
        cid: str,
        ordinal: int,
        handler: Handler | None,
        version: str,
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
        self.state = IDLE
        self.buffer: deque[Delivery] = deque()
        self.doing: Delivery | None = None  # in the handler (one at a time)
        self.batch: list[Delivery] = []  # in the batch handler
        self.started_at = 0.0  # when the handler in progress began
        self.failed = 0
        self.hist = LatencyHistogram(parent=ctx.latency)  # feeds the pool's
        # Lower bound of the deadlines it holds (stale-low is fine: the health tick then
        # looks and finds nothing due); lets the tick skip consumers with nothing due.
        self.next_due = float("inf")
        self.last_beat = ctx.clock.now()  # the health tick beats for it unless hung
        self._hung = False
        self._slow_factor = 1.0
        self.special = False  # hung or slowed: the loop takes the long way after a handler
        self.warm = ctx.startup_delay <= 0  # cold consumers take no work yet
        self.draining = False
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
    def current(self) -> list[Delivery]:
        """What its handler has now (one delivery, or a batch)."""
        d = self.doing
        return [d] if d is not None else self.batch

    @property
    def hung(self) -> bool:
        """A drill hung it: it stops beating and never finishes what it holds."""
        return self._hung

    @hung.setter
    def hung(self, value: bool) -> None:
        self._hung = value
        self.special = value or self._slow_factor > 1.0

    @property
    def slow_factor(self) -> float:
        """A drill's slowdown of its handler runs (1.0: none)."""
        return self._slow_factor

    @slow_factor.setter
    def slow_factor(self, value: float) -> None:
        self._slow_factor = value
        self.special = self._hung or value > 1.0

    @property
    def processed(self) -> int:
        """Deliveries it handled (acked, or its ack came too late); every run it timed
        but the failed ones."""
        return self.hist.count - self.failed

    @property
    def ewma(self) -> float:
        """Its recent handler time (an exponentially weighted mean, seconds)."""
        return self.hist.ewma()

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
        if not self.warm:  # a cold start (connections, caches) before taking work
            await ctx.clock.sleep(ctx.startup_delay)
            await ctx.reports.warmed(self)
        await self._work(asyncio.get_running_loop())

    async def _next(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Wait until there is something buffered (True) or it is drained (False)."""
        self.doing = None
        while True:
            if self._hung:
                await loop.create_future()  # stalls until the health check fails us
            if self.buffer:
                self.state = PROCESSING
                return True
            if self.draining:
                return False
            self.state = IDLE
            await self._idle.park()

    async def _work(self, loop: asyncio.AbstractEventLoop) -> None:
        """One delivery at a time. The hot path, inline for the interpreter: no coroutine
        per message but the handler's own, one clock read, slot accounting only at the
        refill mark; the rest (guards, a sync handler, an ack with a round trip, a drill's
        slowdown or hang, a failure) in `_one` and `_settle`."""
        ctx = self.ctx
        now = ctx.clock.now
        buffer = self.buffer
        handler = self.handler
        ack_nowait = ctx.ack_nowait
        plain = self.is_async and ack_nowait is not None and not ctx.guards.active
        slots = ctx.slots
        timed = self.hist.pending.append  # latencies, binned by the histogram in batches
        limit, low = self.limit, self.low
        spare_at, want = limit - 1, limit - low
        take = slots.receive_nowait
        ids = [self.id] * want  # a refill at the mark: what it has room for
        if not await self._next(loop):  # (hung before it first ran: it stalls there)
            return
        t0 = now()
        turn_at = t0 + TURN_EVERY
        while True:
            if not buffer or t0 > turn_at:  # parked, or handlers that never suspend on
                if not await self._pause(loop, t0 > turn_at):  # a backlog: let the loop
                    return  # drained                            # turn (timers, signals)
                t0 = now()  # only its own handling counts toward a turn
                turn_at = t0 + TURN_EVERY
            d = buffer.popleft()
            if plain:
                self.doing = d
                self.started_at = t0
                try:
                    await handler(d)  # type: ignore[misc]
                except asyncio.CancelledError:
                    t0 = await self._settle(d, t0, self._timeout_error("handler"))
                    continue
                except BaseException as exc:  # that delivery failed: sys.exit (argparse on
                    if is_stop_request(exc, self.task):  # a bad message), pytest's fail; but
                        raise  # a real Ctrl-C or the coroutine closed: no more awaits
                    t0 = await self._settle(d, t0, describe_error(exc))
                    continue
                if self.special:
                    t0 = await self._settle(d, t0, None)
                    continue
                try:
                    ack_nowait(d.receipt)  # type: ignore[misc]
                except ReceiptRejected:
                    ctx.reports.ack_rejected(self, d)
                t1 = now()  # the latency: handled and acked; and the next one's start
                timed(t1 - t0)
                t0 = t1
            else:
                t0 = await self._one(d, t0)
                continue
            held = self.held - 1
            if held > low:  # still above the refill mark: no one's room changes
                self.held = held
                if held == spare_at:  # a spare slot: new work may come here
                    slots.has_spare(self)
            else:  # at the mark: nobody else wants work (no choice for the balancer
                if (  # to make), so take straight from the broker (per message at prefetch 1)
                    not slots.room_total
                    and slots.direct
                    and not self.draining
                    and self.state is PROCESSING
                ):
                    got = take(ids)  # type: ignore[misc]
                    buffer.extend(got)
                    for d in got:
                        if d.deadline < self.next_due:
                            self.next_due = d.deadline
                    if len(got) == want:
                        self.held = limit  # full again: its room stays 0
                    else:  # the queue ran dry: it keeps the rest as room
                        slots.took(self, held + len(got))
                elif slots.refill(self, 1):
                    self.doing = None
                    await slots.dispatch(self)
                t0 = now()  # a refill is no handling

    async def _pause(self, loop: asyncio.AbstractEventLoop, turn: bool) -> bool:
        """Let the loop turn (after TURN_EVERY of handling) or wait for work; bin the
        latencies timed meanwhile. False once drained."""
        self.doing = None
        if len(self.hist.pending) >= PENDING_LIMIT:
            self.hist.digest()
        if turn:
            await asyncio.sleep(0)
        return await self._next(loop)

    async def _one(self, d: Delivery, t0: float) -> float:
        """One delivery the long way: guards, a sync handler, or an ack with a round trip."""
        ctx = self.ctx
        guards = ctx.guards
        if guards.active and await guards.hold_back(d):
            return await self._release(ctx.clock.now())
        self.doing = d
        self.started_at = t0 = ctx.clock.now()
        handler = self.handler
        error: str | None = None
        try:
            if self.is_async:
                await handler(d)  # type: ignore[misc]
            elif handler is not None:
                await call_in_thread(handler, d)
        except asyncio.CancelledError:
            error = self._timeout_error("handler")
        except BaseException as exc:
            if is_stop_request(exc, self.task):
                raise
            error = describe_error(exc)
        return await self._settle(d, t0, error)

    async def _settle(self, d: Delivery, t0: float, error: str | None) -> float:
        """After a handler run begun at t0: a drill's slowdown or hang, the ack or nack,
        the slot. Returns when the next delivery starts."""
        clock = self.ctx.clock
        t1 = clock.now()
        if self.special:
            t1 = await self._finish_run(t0, t1)
        self.doing = None
        if error is None:
            await self._acked(d, t1 - t0)
        else:
            await self._failed(d, error, t1 - t0)
        return await self._release(clock.now())

    async def _release(self, now: float) -> float:
        """The slot of one delivery is free (done or deferred): refill at the mark."""
        slots = self.ctx.slots
        held = self.held - 1
        if held > self.low:
            self.held = held
            if held == self.limit - 1:
                slots.has_spare(self)
        elif slots.refill(self, 1):
            await slots.dispatch(self)
            now = self.ctx.clock.now()
        if self._hung:  # hung while it acked or refilled: the next one never starts
            await asyncio.get_running_loop().create_future()
        return now

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
        if self._slow_factor > 1.0:  # a drill slowed this consumer down
            await clock.sleep((t1 - t0) * (self._slow_factor - 1.0))
            t1 = clock.now()
        if self._hung:  # a hung consumer never gets to ack
            await asyncio.get_running_loop().create_future()
        return t1

    async def _acked(self, d: Delivery, elapsed: float) -> None:
        ctx = self.ctx
        try:
            if ctx.ack_nowait is not None:
                ctx.ack_nowait(d.receipt)
            else:
                await ctx.broker.ack(d.receipt)
        except ReceiptRejected:
            ctx.reports.ack_rejected(self, d)
        self.hist.record(elapsed)
        if ctx.guards.breakers:
            ctx.guards.succeeded(d)

    async def _failed(self, d: Delivery, error: str, elapsed: float) -> None:
        ctx = self.ctx
        self.failed += 1
        # Failed runs took time too; but the ewma, which p2c-ewma routes by, is of
        # successes (a consumer failing fast must not look fast and draw the work).
        self.hist.record(elapsed, in_ewma=False)
        try:
            dead = await ctx.broker.nack(d.receipt, error)
        except ReceiptRejected:
            return
        ctx.guards.failed(d)
        if dead:
            ctx.reports.dead_lettered(self, d, error)

    def note_state(self) -> ConsumerState:
        """The state to show (draining wins while it lasts)."""
        if self.draining and self.state in LIVE_STATES:
            return ConsumerState.DRAINING
        return self.state
