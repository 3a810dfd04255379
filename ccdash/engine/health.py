"""The health monitor: one steady tick that keeps the pool honest.

Each tick (every heartbeat_interval) it beats for live consumers, cancels
handlers over their timeout, extends leases that a live consumer still holds,
fails consumers whose heartbeat is too old, lets the supervisor replace them,
refreshes the gauges, and runs the engine's other per-tick work (alert rules,
joiners, autoscaler). Beating right before judging means a blocked event loop
delays everyone alike and never causes a false failover.

Leases get the same care: the monitor vouches that the process ran on time up to
its next tick (plus some slack), and the broker judges no lease expired beyond
that. A tick that comes late found a stall (a handler blocking the loop): it
first extends what live consumers hold, then vouches again, so a delivery that
only waited out the stall is not charged an attempt. The stall is recorded with
its culprit (what stall.BlockSampler saw running), logged and alerted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from ccdash.brokers.base import Broker, Delivery
from ccdash.clock import Clock
from ccdash.engine.alerts import AlertBook
from ccdash.engine.consumer import Consumer
from ccdash.engine.events import Emit, EventKind
from ccdash.engine.gauges import Gauges
from ccdash.engine.snapshot import StallView
from ccdash.engine.stall import Blame, BlockSampler, Describe
from ccdash.engine.states import Severity
from ccdash.text import counted

# A batch of leases on its way to the broker, and the future of their new deadlines.
Extending = tuple[list[Delivery], "asyncio.Future[list[float | None]]"]
KEEP_BATCH = 1000  # leases per extend_many call; the loop runs between batches
SPREAD_MIN = KEEP_BATCH  # a tick's share of the leases over which it extends early
STALL_MIN = 0.1  # a late tick is recorded as a stall from this many seconds
STALL_QUIET = 30.0  # the loop-stalled alert resolves after this long without a stall

TickHook = Callable[[float], Awaitable[None] | None]  # run after each tick with its time


def _next_due(c: Consumer) -> float:
    return c.next_due


class Supervised(Protocol):
    """The pool as the health monitor sees it: who runs, and the two things it may do."""

    @property
    def consumers(self) -> Mapping[str, Consumer]:
        """Running consumers (not ended), oldest first."""
        ...

    async def fail(self, c: Consumer, reason: str) -> int:
        """Fail c and hand its leases to the others."""
        ...

    def replace_failed(self) -> None:
        """Start replacements for failed consumers, within the restart limit."""
        ...


class HealthMonitor:
    """Heartbeats, lease keeping, stall detection, failure detection, supervision, gauges."""

    def __init__(
        self,
        clock: Clock,
        pool: Supervised,
        broker: Broker,
        gauges: Gauges,
        emit: Emit,
        alerts: AlertBook,
        *,
        interval: float,
        timeout: float,
        handler_timeout: float | None,
        hooks: tuple[TickHook, ...] = (),
    ) -> None:
        self.clock = clock
        self.pool = pool
        self.broker = broker
        self.gauges = gauges
        self.emit = emit
        self.alerts = alerts
        self.interval = interval
        self.timeout = timeout
        self.handler_timeout = handler_timeout
        self.hooks = hooks
        self._running = True
        vt = broker.config.visibility_timeout  # the broker's: the one that leases
        self.visibility_timeout = vt
        # How late a tick may be before lease judging waits for it; below the gap between
        # the interval and the visibility timeout, so kept leases never run out between.
        self.slack = min(interval, vt - interval) / 2
        self.alive_at = clock.now()  # the last tick that kept the leases
        self.stalls: deque[StallView] = deque(maxlen=50)  # oldest first
        self.blame: Blame | None = None  # the sampler's latest sighting, not yet recorded
        self._sampler: BlockSampler | None = None

    @property
    def loop_lag(self) -> float:
        """How late the last tick ran, seconds."""
        return self.gauges.loop_lag

    def begin(self, describe: Describe | None) -> None:
        """The engine starts: vouch from now, and (on the real clock: `describe` given)
        start the watchdog that names what blocks the loop."""
        self.alive_at = self.clock.now()
        if describe is not None:
            self._sampler = BlockSampler(
                asyncio.get_running_loop(), max(self.slack, STALL_MIN), describe, self.blamed
            )
            self._sampler.start()

    def stop(self) -> None:
        """End the loop after the current tick; stop the watchdog."""
        self._running = False
        if self._sampler is not None:
            self._sampler.stop()

    def vouched_until(self) -> float:
        """Up to when lease expiry may be judged: the next tick's time plus slack while
        ticks come on time; held there while one is late (the loop is stalled). A
        stopped monitor keeps no leases, so it vouches for any time."""
        if not self._running:
            return float("inf")
        return self.alive_at + self.interval + self.slack

    def blamed(self, blame: Blame) -> None:
        """The sampler saw what blocked the loop; the next tick records it."""
        if self.blame is None or blame.seconds > self.blame.seconds:
            self.blame = blame

    async def run(self) -> None:
        """Tick every heartbeat interval until stopped."""
        clock = self.clock
        interval = self.interval
        last_end = self.alive_at  # the engine's start, then the end of each tick
        expected = last_end + interval
        while self._running:
            target = max(expected, last_end)  # a tick that ran over is not loop lag
            await clock.sleep(max(0.0, target - clock.now()))
            now = clock.now()
            self.gauges.loop_lag = max(0.0, now - target)
            expected = max(expected + interval, now)  # skip missed ticks, never pile up
            await self.tick()
            last_end = clock.now()

    async def tick(self) -> None:
        """One round of health keeping."""
        pool = self.pool
        now = self.clock.now()
        consumers = list(pool.consumers.values())
        lag = self.loop_lag
        stalled = lag > max(self.slack, STALL_MIN)
        due: list[Delivery] = []
        sent: list[Extending] = []
        live: list[Consumer] = []
        for c in consumers:
            if c.hung:
                continue
            c.last_beat = now
            if stalled and c.current:  # waiting out a stall is no handler time
                c.started_at += lag
            if (
                self.handler_timeout is not None
                and c.current
                and now - c.started_at > self.handler_timeout
            ):
                c.time_out()
            live.append(c)
        # Extend what runs out before the next tick plus slack, at the latest; and, when
        # a tick's share of the leases is more than a batch, older ones ahead of time up
        # to that share, soonest first: leases taken at once (or kept at once) come due
        # at once, and a tick extending them all would run for seconds while the last
        # of them run out (see `_share`).
        soon = max(self.visibility_timeout / 2, self.interval + 2 * self.slack)
        share = self._share(live, soon)
        if share:
            live.sort(key=_next_due)
        ahead = max(soon, self.visibility_timeout - self.interval / 2)
        taken = 0
        for c in live:
            left = c.next_due - now
            if taken < share and left < ahead:
                upto = ahead
            elif left < soon:  # only consumers holding a lease due soon
                upto = soon
            elif share:  # sorted: none of the rest is due, and the share is met
                break
            else:
                continue
            before = len(due)
            self._due_of(c, now, upto, due)
            taken += len(due) - before
            if len(due) >= KEEP_BATCH:  # on its way while the rest is collected
                await self._send(due, sent)
                due = []
        if due:
            await self._send(due, sent)
        kept = await self._settle(sent, now) if sent else 0
        if not stalled and self.blame is not None:
            # The loop stalled while this tick waited on the broker: no lag shows it (a
            # tick that ran over is not lag), but the watchdog saw it. Keep as of now.
            stalled, now = True, self.clock.now()
        if stalled:  # and what the broker holds for us beyond the consumers' leases
            await self.broker.keep_after_stall()
            for _ in range(3):  # and what was handed out during those round trips
                late = [
                    d
                    for c in consumers
                    if not c.hung and c.id in pool.consumers
                    for d in c.held_deliveries()
                    if d.deadline <= now
                ]
                if not late:
                    break
                kept += await self._keep_leases(late, now)
        self.alive_at = now  # leases kept: judging may go on
        if stalled or self.blame is not None:
            self._record_stall(now, kept)
        elif self.stalls and now - self.stalls[-1].at > STALL_QUIET:
            self.alerts.resolve(EventKind.LOOP_STALLED)
        for c in consumers:
            if c.id in pool.consumers and now - c.last_beat > self.timeout:
                await pool.fail(c, f"no heartbeat for {now - c.last_beat:.1f}s")
        pool.replace_failed()
        self.gauges.sample(now, pool.consumers.values(), self.broker.stats())
        for hook in self.hooks:
            result = hook(now)
            if result is not None:
                await result

    def _share(self, live: list[Consumer], soon: float) -> int:
        """How many leases a tick extends at least (0: only the due ones). A kept lease
        comes due again `cycle` ticks later, so a tick's share of what is held is
        1/cycle of it; extending that much each tick keeps any one tick from having
        them all due. Below a batch it is not worth extending early (one round trip
        either way)."""
        cycle = int((self.visibility_timeout - soon) // self.interval) + 1
        if cycle < 2:
            return 0
        share = -(-sum(c.held for c in live) // cycle)
        return share if share > SPREAD_MIN else 0

    def _due_of(self, c: Consumer, now: float, upto: float, due: list[Delivery]) -> None:
        """Add c's leases that run out within `upto` to `due`; note when the next of
        the rest does (the extended ones get a whole visibility timeout)."""
        nxt = now + self.visibility_timeout
        for d in c.held_deliveries():
            if d.deadline - now < upto:
                due.append(d)
            elif d.deadline < nxt:
                nxt = d.deadline
        c.next_due = nxt

    async def _keep_leases(self, due: list[Delivery], now: float) -> int:
        """Extend these leases before they run out (see `_send`, `_settle`)."""
        sent: list[Extending] = []
        await self._send(due, sent)
        return await self._settle(sent, now)

    async def _send(self, due: list[Delivery], sent: list[Extending]) -> None:
        """Start extending `due`, KEEP_BATCH per `extend_many` (one round trip on a
        remote broker, not one per lease), letting the loop run after each batch so
        no tick stalls it; a batch is prepared while the ones before are on their way."""
        vt = self.visibility_timeout
        broker = self.broker
        for i in range(0, len(due), KEEP_BATCH):
            batch = due[i : i + KEEP_BATCH]
            sent.append(
                (batch, asyncio.ensure_future(broker.extend_many([d.receipt for d in batch], vt)))
            )
            await asyncio.sleep(0)

    async def _settle(self, sent: list[Extending], now: float) -> int:
        """Wait for the extensions sent and note the new deadlines. Returns how many
        had already run out by the clock (a stall) and were kept. A lease already gone
        stays as it is: its ack will be rejected and counted."""
        kept = 0
        try:
            for n, (batch, fut) in enumerate(sent):
                if n and fut.done():
                    await asyncio.sleep(0)  # a done future does not yield: let the loop run
                for d, deadline in zip(batch, await fut, strict=True):
                    if deadline is not None:
                        kept += d.deadline <= now
                        d.deadline = deadline
        finally:  # stopped or failed part-way: no batch left running or unread
            for _, fut in sent:
                if not fut.done():
                    fut.cancel()
                elif not fut.cancelled():
                    fut.exception()
        return kept

    def _record_stall(self, now: float, kept: int) -> None:
        """Log, alert and keep (for the snapshot) a stall and its culprit if seen."""
        blame, self.blame = self.blame, None
        seconds = max(self.loop_lag, blame.seconds if blame else 0.0)
        stall = StallView(
            now,
            seconds,
            blame.consumer_id if blame else "",
            blame.message_id if blame else "",
            blame.where if blame else "",
            kept,
        )
        self.stalls.append(stall)
        if stall.consumer_id:
            cause = f"by {stall.consumer_id}'s handler of {stall.message_id}"
            if stall.where:
                cause += f" (at {stall.where})"
        elif stall.where:
            cause = f"at {stall.where}"
        else:
            cause = "(what blocked it was not seen)"
        msg = (
            f"event loop blocked {seconds:.1f}s {cause}; kept {counted(kept, 'lease')} that ran "
            f"out meanwhile, no attempt charged"
        )
        self.emit(
            EventKind.LOOP_STALLED,
            msg,
            seconds=round(seconds, 3),
            consumer=stall.consumer_id,
            message_id=stall.message_id,
            where=stall.where,
            leases_kept=kept,
        )
        self.alerts.fire(EventKind.LOOP_STALLED, Severity.WARNING, msg)
