"""The pool's gauges, refreshed once per health tick: rates, pool latency, DLQ growth,
event-loop lag. Rules, snapshots and the exposition read them; nothing on the
per-message path writes them."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from ccdash.brokers.base import QueueStats
from ccdash.engine.consumer import Consumer
from ccdash.engine.metrics import LatencyHistogram, RateMeter

HIST_GENERATION = 10.0  # seconds per latency-histogram generation (window: 10-20 s)
DLQ_WINDOW = 10.0  # "DLQ growing" looks at this many seconds


class Gauges:
    """What the health tick measures, read by whoever needs it."""

    def __init__(self, now: float) -> None:
        self.loop_lag = 0.0  # how late the last health tick ran, seconds
        self.publish_rate = RateMeter()
        self.ack_rate = RateMeter()
        self.latency = LatencyHistogram()  # the whole pool's, fed by every consumer's
        self.pool_p50: float | None = None
        self.pool_p99: float | None = None
        self._dead_samples: deque[tuple[float, int]] = deque()
        self._last_rotate = now

    def sample(self, now: float, consumers: Iterable[Consumer], stats: QueueStats) -> None:
        """Refresh the pool's latency quantiles and the rates."""
        consumers = list(consumers)
        for c in consumers:  # their latencies not binned yet go to the pool's too
            if c.hist.pending:
                c.hist.digest()
        if now - self._last_rotate >= HIST_GENERATION:
            self._last_rotate = now
            for c in consumers:
                c.hist.rotate()  # free for an idle consumer
            self.latency.rotate()
        # The pool's latency from its one histogram, fed as messages finish; each
        # consumer's quantiles are computed only when a view reads them.
        self.pool_p50, self.pool_p99 = self.latency.p50_p99()
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
