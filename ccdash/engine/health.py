"""The health monitor: one steady tick that keeps the pool honest.

Each tick (every heartbeat_interval) it beats for live consumers, cancels
handlers over their timeout, extends leases that a live consumer still holds,
fails consumers whose heartbeat is too old, lets the supervisor replace them,
and refreshes the metrics and alerts. Beating right before judging means a
blocked event loop delays everyone alike and never causes a false failover.

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
from typing import TYPE_CHECKING

from ccdash.brokers.base import Delivery
from ccdash.engine.alerts import WARNING
from ccdash.engine.metrics import LatencyHistogram, RateMeter
from ccdash.engine.rules import RuleEvaluator
from ccdash.engine.snapshot import StallView
from ccdash.engine.stall import Blame

if TYPE_CHECKING:
    from ccdash.engine.consumer import Consumer
    from ccdash.engine.engine import Engine

HIST_GENERATION = 10.0  # seconds per latency-histogram generation (window: 10-20 s)
DLQ_WINDOW = 10.0  # "DLQ growing" looks at this many seconds
KEEP_BATCH = 1000  # leases per extend_many call; the loop runs between batches
STALL_MIN = 0.1  # a late tick is recorded as a stall from this many seconds
STALL_QUIET = 30.0  # the loop-stalled alert resolves after this long without a stall


class HealthMonitor:
    """Heartbeats, lease keeping, failure detection, supervision, metrics, alerts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loop_lag = 0.0
        self.publish_rate = RateMeter()
        self.ack_rate = RateMeter()
        self.latency = LatencyHistogram()  # the whole pool's, fed by every consumer
        self.pool_p50: float | None = None
        self.pool_p99: float | None = None
        self._restarts: deque[float] = deque()
        self._dead_samples: deque[tuple[float, int]] = deque()
        self._last_rotate = engine.clock.now()
        self._running = True
        self.ticks = 0
        self.rules = RuleEvaluator(engine, engine.config.rules())
        cfg = engine.config
        interval = cfg.heartbeat_interval
        # How late a tick may be before lease judging waits for it; below the gap between
        # the interval and the visibility timeout, so kept leases never run out between.
        self.slack = min(interval, cfg.visibility_timeout - interval) / 2
        self.alive_at = engine.clock.now()  # the last tick that kept the leases
        self.stalls: deque[StallView] = deque(maxlen=50)  # oldest first
        self.blame: Blame | None = None  # the sampler's latest sighting, not yet recorded

    def stop(self) -> None:
        """End the loop after the current tick."""
        self._running = False

    def vouched_until(self) -> float:
        """Up to when lease expiry may be judged: the next tick's time plus slack while
        ticks come on time; held there while one is late (the loop is stalled). A
        stopped monitor keeps no leases, so it vouches for any time."""
        if not self._running:
            return float("inf")
        return self.alive_at + self.engine.config.heartbeat_interval + self.slack

    def blamed(self, blame: Blame) -> None:
        """The sampler saw what blocked the loop; the next tick records it."""
        if self.blame is None or blame.seconds > self.blame.seconds:
            self.blame = blame

    def may_restart(self) -> bool:
        """Within the restart intensity limit? Records the restart if so."""
        cfg = self.engine.config
        now = self.engine.clock.now()
        while self._restarts and now - self._restarts[0] > cfg.restart_window:
            self._restarts.popleft()
        if len(self._restarts) >= cfg.restart_limit:
            return False
        self._restarts.append(now)
        return True

    async def run(self) -> None:
        """Tick every heartbeat_interval until stopped."""
        clock = self.engine.clock
        interval = self.engine.config.heartbeat_interval
        last_end = self.alive_at  # the engine's start, then the end of each tick
        expected = last_end + interval
        while self._running:
            target = max(expected, last_end)  # a tick that ran over is not loop lag
            await clock.sleep(max(0.0, target - clock.now()))
            now = clock.now()
            self.loop_lag = max(0.0, now - target)
            expected = max(expected + interval, now)  # skip missed ticks, never pile up
            await self.tick()
            last_end = clock.now()

    async def tick(self) -> None:
        """One round of health keeping."""
        eng = self.engine
        cfg = eng.config
        now = eng.clock.now()
        self.ticks += 1
        consumers = list(eng.consumers.values())
        stalled = self.loop_lag > max(self.slack, STALL_MIN)
        # Extend what runs out before the next tick plus slack, at the latest.
        soon = max(cfg.visibility_timeout / 2, cfg.heartbeat_interval + 2 * self.slack)
        due: list[Delivery] = []
        for c in consumers:
            if c.hung:
                continue
            c.last_beat = now
            if stalled and c.current:  # waiting out a stall is no handler time
                c.started_at += self.loop_lag
            if cfg.handler_timeout is not None and c.current and \
                    now - c.started_at > cfg.handler_timeout:
                c.time_out()
            if c.next_due - now < soon:  # only consumers holding a lease due soon
                self._due_of(c, now, soon, due)
        kept = await self._keep_leases(due, now) if due else 0
        if stalled:  # and what the broker holds for us beyond the consumers' leases
            await eng.broker.keep_after_stall()
            for _ in range(3):  # and what was handed out during those round trips
                late = [d for c in consumers if not c.hung and c.id in eng.consumers
                        for d in c.held_deliveries() if d.deadline <= now]
                if not late:
                    break
                kept += await self._keep_leases(late, now)
        self.alive_at = now  # leases kept: judging may go on
        if stalled or self.blame is not None:
            self._record_stall(now, kept)
        elif self.stalls and now - self.stalls[-1].at > STALL_QUIET:
            eng.alerts.resolve("loop-stalled")
        for c in consumers:
            if c.id in eng.consumers and now - c.last_beat > cfg.heartbeat_timeout:
                await eng.fail_consumer(c, f"no heartbeat for {now - c.last_beat:.1f}s")
        eng.replace_failed()
        self._metrics(now)
        self.rules.evaluate(now)
        eng.check_joiners()
        if eng.autoscale and eng.autoscaler is not None:
            await eng.autoscaler.tick(now)

    def _due_of(self, c: Consumer, now: float, soon: float, due: list[Delivery]) -> None:
        """Add c's leases that run out within `soon` to `due`; note when the next of
        the rest does (the extended ones get a whole visibility timeout)."""
        nxt = now + self.engine.config.visibility_timeout
        for d in c.held_deliveries():
            if d.deadline - now < soon:
                due.append(d)
            elif d.deadline < nxt:
                nxt = d.deadline
        c.next_due = nxt

    async def _keep_leases(self, due: list[Delivery], now: float) -> int:
        """Extend the leases live consumers hold before they run out, KEEP_BATCH per
        `extend_many` (one round trip on a remote broker, not one per lease). The loop
        runs between batches, so no tick stalls it, and a batch is prepared while the
        ones before it are on their way. Returns how many had already run out by the
        clock (a stall) and were kept. A lease already gone stays as it is: its ack
        will be rejected and counted."""
        vt = self.engine.config.visibility_timeout
        broker = self.engine.broker
        sent: list[tuple[list[Delivery], asyncio.Future[list[float | None]]]] = []
        kept = 0
        try:
            for i in range(0, len(due), KEEP_BATCH):
                batch = due[i:i + KEEP_BATCH]
                sent.append((batch, asyncio.ensure_future(
                    broker.extend_many([d.receipt for d in batch], vt))))
                await asyncio.sleep(0)
            for batch, fut in sent:
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
        eng = self.engine
        blame, self.blame = self.blame, None
        seconds = max(self.loop_lag, blame.seconds if blame else 0.0)
        stall = StallView(now, seconds, blame.consumer_id if blame else "",
                          blame.message_id if blame else "", blame.where if blame else "",
                          kept)
        self.stalls.append(stall)
        if stall.consumer_id:
            cause = f"by {stall.consumer_id}'s handler of {stall.message_id}"
            if stall.where:
                cause += f" (at {stall.where})"
        elif stall.where:
            cause = f"at {stall.where}"
        else:
            cause = "(what blocked it was not seen)"
        msg = (f"event loop blocked {seconds:.1f}s {cause}; {kept} leases that ran out "
               f"meanwhile were kept, no attempt charged")
        eng.emit("loop-stalled", msg, seconds=round(seconds, 3), consumer=stall.consumer_id,
                 message_id=stall.message_id, where=stall.where, leases_kept=kept)
        eng.alerts.fire("loop-stalled", WARNING, msg)

    def _metrics(self, now: float) -> None:
        eng = self.engine
        if now - self._last_rotate >= HIST_GENERATION:
            self._last_rotate = now
            for c in eng.consumers.values():
                c.hist.rotate()  # free for an idle consumer
            self.latency.rotate()
        # The pool's latency from its one histogram, fed as messages finish; each
        # consumer's quantiles are computed only when a view reads them.
        self.pool_p50, self.pool_p99 = self.latency.p50_p99()
        stats = eng.broker.stats()
        self.publish_rate.sample(now, stats.published)
        self.ack_rate.sample(now, stats.acked)
        self._dead_samples.append((now, stats.dead_lettered))
        while len(self._dead_samples) > 2 and now - self._dead_samples[1][0] >= DLQ_WINDOW:
            self._dead_samples.popleft()

    def dlq_growth(self) -> int:
        """Dead letters added over the last DLQ_WINDOW seconds."""
        if not self._dead_samples:
            return 0
        return self._dead_samples[-1][1] - self._dead_samples[0][1]
