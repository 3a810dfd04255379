"""The autoscaler: reactive on backlog and utilisation, predictive on the forecast
arrival rate; the larger wins, within min/max, a step limit, a scale-down
stabilisation window (the highest recommendation of the window, as Kubernetes'
HPA does) and a cooldown. Scaling down drains the idlest consumers.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccdash.engine.forecast import Holt

if TYPE_CHECKING:
    from ccdash.engine.engine import Engine


@dataclass(frozen=True, slots=True)
class Decision:
    """One autoscaler evaluation: what it saw, what it wanted, what it did and why."""

    at: float
    current: int
    reactive: int
    predictive: int
    desired: int
    applied: int
    reason: str
    arrival_rate: float
    forecast_rate: float
    service_time: float


class Autoscaler:
    """Sizes the pool every `scale_interval` seconds while the engine's autoscale is on."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        cfg = engine.config
        self.holt = Holt()
        self.decisions: deque[Decision] = deque(maxlen=300)
        # (time, recommendation); the configured size counts as the first recommendation.
        self._recent: deque[tuple[float, int]] = deque([(engine.clock.now(), cfg.consumers)])
        self.decision_count = 0  # all-time (decisions keeps only the latest)
        self._last_change = float("-inf")
        self._last_eval = float("-inf")
        self._last_published: int | None = None
        self._last_at = 0.0
        self.arrival_rate = 0.0
        self.interval = cfg.scale_interval

    def service_time(self) -> float:
        """Mean handling time per message across the pool (seconds), from the EWMAs."""
        times = [c.ewma for c in self.engine.consumers.values() if c.ewma > 0]
        return sum(times) / len(times) if times else 0.0

    async def tick(self, now: float) -> Decision | None:
        """Evaluate if a decision interval has passed; apply the result."""
        # A health tick may wake a hair early on a real clock: do not skip it for that.
        if now - self._last_eval < self.interval * 0.95:
            return None
        self._last_eval = now
        eng = self.engine
        cfg = eng.config
        stats = eng.broker.stats()
        if self._last_published is not None and now > self._last_at:
            self.arrival_rate = (stats.published - self._last_published) / (now - self._last_at)
            self.holt.update(self.arrival_rate)
        self._last_published, self._last_at = stats.published, now
        current = sum(1 for c in eng.consumers.values() if not c.draining)
        service = self.service_time()
        backlog = stats.ready + stats.delayed
        busy = sum(1 for c in eng.consumers.values() if c.current)
        util = busy / current if current else 1.0

        reactive = max(
            math.ceil(backlog / cfg.target_backlog_per_consumer),
            math.ceil(current * util / cfg.target_utilisation) if current else 0,
            cfg.min_consumers,
        )
        steps = cfg.forecast_horizon / self.interval
        forecast = self.holt.forecast(steps) if self.holt.n >= 2 else self.arrival_rate
        predictive = 0
        if cfg.predictive and service > 0:
            predictive = math.ceil(forecast * service / cfg.target_utilisation)
        want = max(reactive, predictive)
        reason = "forecast" if predictive > reactive else (
            "backlog" if backlog / cfg.target_backlog_per_consumer >= reactive else "utilisation")

        # Scale-down stabilisation: never below the highest recommendation of the window.
        self._recent.append((now, want))
        while self._recent and now - self._recent[0][0] > cfg.scale_down_window:
            self._recent.popleft()
        if want < current:
            if any(not c.warm for c in eng.consumers.values()):
                # Cold consumers look idle; judge the pool once they have started.
                want, reason = current, "warming"
            else:
                want = min(current, max(r for _, r in self._recent))
                if want == current:
                    reason = "stabilising"
        desired = max(cfg.min_consumers, min(cfg.max_consumers, want))
        if desired == cfg.max_consumers and want > cfg.max_consumers:
            reason = "at-max"
        step = max(-cfg.max_scale_step, min(cfg.max_scale_step, desired - current))
        applied = current + step
        if step and now - self._last_change < cfg.scale_cooldown:
            applied, reason = current, "cooldown"
        decision = Decision(now, current, reactive, predictive, desired, applied, reason,
                            self.arrival_rate, forecast, service)
        self.decisions.append(decision)
        self.decision_count += 1
        if applied == current and desired != current:
            eng.emit("scale-held", f"autoscaler wanted {desired}, held at {current} ({reason})",
                     desired=desired, current=current, reason=reason)
        if applied != current:
            self._last_change = now
            await eng.scale_to(applied, source="autoscaler", reason=reason)
        return decision
