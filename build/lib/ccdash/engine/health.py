"""The health monitor: one steady tick that keeps the pool honest.

Each tick (every heartbeat_interval) it beats for live consumers, cancels
handlers over their timeout, extends leases that a live consumer still holds,
fails consumers whose heartbeat is too old, lets the supervisor replace them,
and refreshes the metrics and alerts. Beating right before judging means a
blocked event loop delays everyone alike and never causes a false failover.
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import TYPE_CHECKING

from ccdash.brokers.base import ReceiptRejected
from ccdash.engine.metrics import RateMeter, empty_counts, quantile_of
from ccdash.engine.rules import RuleEvaluator

if TYPE_CHECKING:
    from ccdash.engine.consumer import Consumer
    from ccdash.engine.engine import Engine

HIST_GENERATION = 10.0  # seconds per latency-histogram generation (window: 10-20 s)
DLQ_WINDOW = 10.0  # "DLQ growing" looks at this many seconds


class HealthMonitor:
    """Heartbeats, lease keeping, failure detection, supervision, metrics, alerts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loop_lag = 0.0
        self.publish_rate = RateMeter()
        self.ack_rate = RateMeter()
        self.pool_p50: float | None = None
        self.pool_p99: float | None = None
        self._restarts: deque[float] = deque()
        self._dead_samples: deque[tuple[float, int]] = deque()
        self._last_rotate = engine.clock.now()
        self._running = True
        self.ticks = 0
        self.rules = RuleEvaluator(engine, engine.config.rules())

    def stop(self) -> None:
        """End the loop after the current tick."""
        self._running = False

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
        expected = clock.now() + interval
        while self._running:
            await clock.sleep(max(0.0, expected - clock.now()))
            now = clock.now()
            self.loop_lag = max(0.0, now - expected)
            expected = max(expected + interval, now)  # skip missed ticks, never pile up
            await self.tick()

    async def tick(self) -> None:
        """One round of health keeping."""
        eng = self.engine
        cfg = eng.config
        now = eng.clock.now()
        self.ticks += 1
        consumers = list(eng.consumers.values())
        for c in consumers:
            if c.hung:
                continue
            c.last_beat = now
            if cfg.handler_timeout is not None and c.current and \
                    now - c.started_at > cfg.handler_timeout:
                c.time_out()
            await self._keep_leases(c, now)
        for c in consumers:
            if c.id in eng.consumers and now - c.last_beat > cfg.heartbeat_timeout:
                await eng.fail_consumer(c, f"no heartbeat for {now - c.last_beat:.1f}s")
        eng.replace_failed()
        self._metrics(now)
        self.rules.evaluate(now)
        eng.check_joiners()
        if eng.autoscale and eng.autoscaler is not None:
            await eng.autoscaler.tick(now)

    async def _keep_leases(self, c: Consumer, now: float) -> None:
        """Extend leases this live consumer holds before they run out."""
        vt = self.engine.config.visibility_timeout
        for d in c.held_deliveries():
            if d.deadline - now < vt / 2:
                # Already expired? Then the ack will be rejected and counted.
                with contextlib.suppress(ReceiptRejected):
                    d.deadline = await self.engine.broker.extend(d.receipt, vt)

    def _metrics(self, now: float) -> None:
        eng = self.engine
        rotate = now - self._last_rotate >= HIST_GENERATION
        if rotate:
            self._last_rotate = now
        pool = empty_counts()
        for c in eng.consumers.values():
            counts = empty_counts()
            c.hist.merge_into(counts)
            c.p50 = quantile_of(counts, 0.5)
            c.p99 = quantile_of(counts, 0.99)
            for i, v in enumerate(counts):
                if v:
                    pool[i] += v
            if rotate:
                c.hist.rotate()
        self.pool_p50 = quantile_of(pool, 0.5)
        self.pool_p99 = quantile_of(pool, 0.99)
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
