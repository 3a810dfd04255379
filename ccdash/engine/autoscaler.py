"""The autoscaler: reactive on backlog and utilisation, predictive on the forecast
arrival rate; the larger wins, within min/max, a step limit, a scale-down
stabilisation window (the highest recommendation of the window, as Kubernetes'
HPA does) and a cooldown. Scaling down drains the idlest consumers.

Utilisation is the interval's completions times the mean service time per
consumer (Little's law), not a count of consumers busy at the instant of the
decision: that count is all or nothing per consumer and, with prefetch, pushed the
pool ever larger on a load that needed a third of it. The forecast is Holt's with
a damped trend, kept within what the last horizon saw, so a swinging load is not
extrapolated from 0 to twice its peak.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from ccdash.brokers.base import QueueStats
from ccdash.engine.config import EngineConfig
from ccdash.engine.consumer import Consumer
from ccdash.engine.events import Emit, EventKind
from ccdash.engine.forecast import Holt
from ccdash.engine.snapshot import AutoscalerView, Decision
from ccdash.engine.states import ScaleReason

TOLERANCE = 0.1  # a need within 10% of the pool size keeps the pool as it is
REACH = 1.25  # the forecast stays under this multiple of the horizon's highest rate


class Scalable(Protocol):
    """The pool as the autoscaler sees it: who runs, and how to resize it."""

    @property
    def consumers(self) -> Mapping[str, Consumer]:
        """Running consumers (not ended), oldest first."""
        ...

    async def scale_to(self, n: int, *, source: str = ..., reason: str = ...) -> int:
        """Resize the pool now (within min/max)."""
        ...


class Autoscaler:
    """Sizes the pool every `scale_interval` seconds while the engine's autoscale is on."""

    def __init__(
        self,
        config: EngineConfig,
        pool: Scalable,
        stats: Callable[[], QueueStats],
        emit: Emit,
        now: float,
        paused: Callable[[], bool] = lambda: False,
    ) -> None:
        self.config = cfg = config
        self.paused = paused  # consumption paused by the operator: hold the pool
        self.enabled = cfg.autoscale  # the engine resizes the pool by itself only when on
        self.pool = pool
        self.stats = stats
        self.emit = emit
        self.holt = Holt(alpha=0.6, beta=0.3, phi=0.9)
        self.decisions: deque[Decision] = deque(maxlen=300)
        # (time, recommendation); the configured size counts as the first recommendation.
        self._recent: deque[tuple[float, int]] = deque([(now, cfg.consumers)])
        self._last_change = float("-inf")
        self._last_eval = float("-inf")
        self._last_published: int | None = None
        self._last_at = 0.0
        self.arrival_rate = 0.0
        self.interval = cfg.scale_interval
        self._last_acked = 0
        # Smoothed across decisions (EWMA): one second's completions and the consumers'
        # latency EWMAs are noisy, and the scale-down window keeps the highest
        # recommendation it saw, so noise alone would hold the pool above the need.
        self.done_rate = 0.0
        self.service = 0.0
        self._rates: deque[tuple[float, float]] = deque()  # (time, arrival rate), one horizon

    def service_time(self) -> float:
        """Mean handling time per message across the pool (seconds), from the EWMAs."""
        times = [c.ewma for c in self.pool.consumers.values() if c.ewma > 0]
        return sum(times) / len(times) if times else 0.0

    async def on_tick(self, now: float) -> None:
        """Health-tick hook: decide (and apply) while enabled."""
        if self.enabled:
            await self.tick(now)

    async def tick(self, now: float) -> Decision | None:
        """Evaluate if a decision interval has passed; apply the result."""
        # A health tick may wake a hair early on a real clock: do not skip it for that.
        if now - self._last_eval < self.interval * 0.95:
            return None
        self._last_eval = now
        cfg = self.config
        consumers = self.pool.consumers
        stats = self.stats()
        last = self._last_published
        first = last is None
        if last is not None and now > self._last_at:
            self.arrival_rate = (stats.published - last) / (now - self._last_at)
            done = (stats.acked - self._last_acked) / (now - self._last_at)
            if not self.paused():  # no completions while paused: not a measure of need
                self.done_rate = done if self.holt.n == 0 else 0.7 * self.done_rate + 0.3 * done
            self.holt.update(self.arrival_rate)
            self._rates.append((now, self.arrival_rate))
            while now - self._rates[0][0] > cfg.forecast_horizon:
                self._rates.popleft()
        self._last_published, self._last_acked, self._last_at = stats.published, stats.acked, now
        current = sum(1 for c in consumers.values() if not c.draining)
        if self.paused():  # consumers added now could take nothing: hold, and say so
            return self._held(now, current)
        sample = self.service_time()
        if sample > 0:
            self.service = sample if self.service == 0 else 0.8 * self.service + 0.2 * sample
        service = self.service
        backlog = stats.ready + stats.delayed
        if first:
            util = 0.0  # nothing measured over an interval yet: only a backlog counts
        elif service > 0:
            # Little's law: consumers busy on average = completions/s x seconds each.
            util = min(1.0, self.done_rate * service / current) if current else 1.0
        else:  # no service time measured yet: who is busy right now
            busy = sum(1 for c in consumers.values() if c.current)
            util = busy / current if current else 1.0

        by_util = current * util / cfg.target_utilisation if current else 0.0
        reactive = max(
            math.ceil(backlog / cfg.target_backlog_per_consumer),
            math.ceil(by_util),
            cfg.min_consumers,
        )
        steps = cfg.forecast_horizon / self.interval
        forecast = self.holt.forecast(steps) if self.holt.n >= 2 else self.arrival_rate
        if self._rates:
            # Within what the last horizon saw: not below its lowest rate (a fall is the
            # reactive rule's and the window's to judge), not above REACH times its
            # highest (a swing is not a ramp to extrapolate for a whole horizon).
            seen = [r for _, r in self._rates]
            forecast = min(max(forecast, min(seen)), REACH * max(seen))
        by_forecast = 0.0
        if cfg.predictive and service > 0:
            by_forecast = forecast * service / cfg.target_utilisation
        predictive = math.ceil(by_forecast)
        want = max(reactive, predictive)
        reason = (
            ScaleReason.FORECAST
            if predictive > reactive
            else (
                ScaleReason.BACKLOG
                if backlog / cfg.target_backlog_per_consumer >= reactive
                else ScaleReason.UTILISATION
            )
        )
        need = max(by_util, by_forecast)  # consumers the load needs, before rounding up
        if (
            reason != ScaleReason.BACKLOG
            and current
            and abs(need / current - 1) <= TOLERANCE
            and cfg.min_consumers <= current <= cfg.max_consumers
        ):
            # Close enough (Kubernetes' HPA tolerance): rounding noise up or down would
            # move the pool one way, then the other, and the window would keep the high.
            want = current

        # Scale-down stabilisation: never below the highest recommendation of the window.
        self._recent.append((now, want))
        while self._recent and now - self._recent[0][0] > cfg.scale_down_window:
            self._recent.popleft()
        if want < current:
            if any(not c.warm for c in consumers.values()):
                # Cold consumers look idle; judge the pool once they have started.
                want, reason = current, ScaleReason.WARMING
            else:
                want = min(current, max(r for _, r in self._recent))
                if want == current:
                    reason = ScaleReason.STABILISING
        desired = max(cfg.min_consumers, min(cfg.max_consumers, want))
        if desired == cfg.max_consumers and want > cfg.max_consumers:
            reason = ScaleReason.AT_MAX
        step = max(-cfg.max_scale_step, min(cfg.max_scale_step, desired - current))
        applied = current + step
        if step and now - self._last_change < cfg.scale_cooldown:
            applied, reason = current, ScaleReason.COOLDOWN
        decision = Decision(
            now,
            current,
            reactive,
            predictive,
            desired,
            applied,
            reason,
            self.arrival_rate,
            forecast,
            service,
        )
        self.decisions.append(decision)
        if applied == current and desired != current:
            self.emit(
                EventKind.SCALE_HELD,
                f"autoscaler wanted {desired}, held at {current} ({reason})",
                desired=desired,
                current=current,
                reason=reason,
            )
        if applied != current:
            self._last_change = now
            await self.pool.scale_to(applied, source="autoscaler", reason=reason)
        return decision

    def _held(self, now: float, current: int) -> Decision:
        """A decision to keep the pool as it is (consumption paused)."""
        rate = self.arrival_rate
        decision = Decision(
            now, current, current, 0, current, current, ScaleReason.PAUSED, rate, rate, self.service
        )
        self.decisions.append(decision)
        return decision

    def view(self, now: float) -> AutoscalerView:
        """The newest decision, and the forecast that an earlier one made for now."""
        cfg = self.config
        decisions = self.decisions
        horizon = cfg.forecast_horizon
        for_now = None
        # Newest first: only about horizon / interval decisions are looked at.
        for d in reversed(decisions):
            if d.at <= now - horizon:
                # A gap (autoscaler off meanwhile) makes that forecast no forecast for now.
                if d.at >= now - horizon - 2 * cfg.scale_interval:
                    for_now = d.forecast_rate
                break
        return AutoscalerView(
            last=decisions[-1] if decisions else None,
            horizon=horizon,
            forecast_for_now=for_now,
            predictive=cfg.predictive,
        )
