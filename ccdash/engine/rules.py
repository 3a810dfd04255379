"""Alert rules: a metric, a comparison, a threshold, a `for` duration, a severity.

Rules are evaluated on every health tick against a few named metrics read from
the engine. A rule fires once its condition has held for `for_s` seconds,
resolves when it stops holding, and is de-duplicated while firing.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

from ccdash.engine.reading import EngineView
from ccdash.engine.states import ConsumerState, ScaleReason, Severity
from ccdash.engine.views import queue_latency

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
SEVERITIES = tuple(Severity)

METRICS: dict[str, str] = {
    "queue_depth": "messages ready or waiting to retry",
    "in_flight": "leased messages",
    "queue_latency": "age of the oldest ready message, seconds (0 when none is ready)",
    "dead": "messages in the DLQ",
    "dlq_growth": "dead letters added over the last 10 s",
    "p99_latency": "pool p99 handler latency, seconds",
    "p50_latency": "pool p50 handler latency, seconds",
    "live_consumers": "healthy consumers (taking work or still starting)",
    "failed_consumers": "consumers failed in the last 60 s",
    "publish_rate": "messages published per second",
    "ack_rate": "messages acked per second",
    "loop_lag": "event-loop lag, seconds",
    "autoscaler_at_max": "1 while the autoscaler wants more than max_consumers",
}


class RuleError(ValueError):
    """A rule that cannot be evaluated; the message names the field."""


@dataclass(frozen=True, slots=True)
class AlertRule:
    """Fire `name` when `metric <op> threshold` has held for `for_s` seconds."""

    name: str
    metric: str
    op: str
    threshold: float
    for_s: float = 0.0
    severity: Severity = Severity.WARNING
    message: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise RuleError("alert rule needs a name")
        if self.metric not in METRICS:
            raise RuleError(
                f"alert rule {self.name!r}: unknown metric {self.metric!r}; "
                f"choose one of: {', '.join(METRICS)}"
            )
        if self.op not in COMPARISONS:
            raise RuleError(
                f"alert rule {self.name!r}: unknown comparison {self.op!r}; "
                f"choose one of: {' '.join(COMPARISONS)}"
            )
        if not math.isfinite(self.threshold):
            raise RuleError(f"alert rule {self.name!r}: threshold must be a finite number")
        if not (math.isfinite(self.for_s) and self.for_s >= 0):
            raise RuleError(f"alert rule {self.name!r}: 'for' must be a non-negative number")
        if self.severity not in SEVERITIES:
            raise RuleError(
                f"alert rule {self.name!r}: unknown severity {self.severity!r}; "
                f"choose one of: {', '.join(SEVERITIES)}"
            )
        # A severity given as its text becomes the member (frozen: set it underneath).
        object.__setattr__(self, "severity", Severity(self.severity))


def default_rules(latency_slo: float | None = None) -> tuple[AlertRule, ...]:
    """The built-in rules; a p99 rule only when a latency SLO is known."""
    rules = [
        AlertRule(
            "queue-depth-high",
            "queue_depth",
            ">",
            1000,
            10.0,
            Severity.WARNING,
            "queue depth above 1000 for 10 s",
        ),
        AlertRule(
            "dlq-growing",
            "dlq_growth",
            ">",
            0,
            0.0,
            Severity.WARNING,
            "DLQ grew by {value} in 10 s",  # the growth: "(now N)" read as the DLQ's size
        ),
        AlertRule(
            "no-healthy-consumer",
            "live_consumers",
            "==",
            0,
            0.0,
            Severity.CRITICAL,
            "no healthy consumer is running",
        ),
        AlertRule(
            "autoscaler-pinned",
            "autoscaler_at_max",
            "==",
            1,
            30.0,
            Severity.WARNING,
            "autoscaler pinned at max_consumers for 30 s",
        ),
    ]
    if latency_slo is not None:
        rules.append(
            AlertRule(
                "p99-over-slo",
                "p99_latency",
                ">",
                latency_slo,
                10.0,
                Severity.WARNING,
                f"p99 latency over the {latency_slo * 1000:g} ms SLO for 10 s",
            )
        )
    return tuple(rules)


class RuleEvaluator:
    """Holds the pending-since times of rules and fires/resolves alerts."""

    def __init__(self, engine: EngineView, rules: tuple[AlertRule, ...]) -> None:
        self.engine = engine
        self.rules = rules
        self._since: dict[str, float] = {}

    def metric(self, name: str) -> float:
        """The current value of a named metric."""
        eng = self.engine
        h = eng.gauges
        if name in ("queue_depth", "in_flight", "dead"):
            s = eng.broker.stats()
            return float({"queue_depth": s.depth, "in_flight": s.in_flight, "dead": s.dead}[name])
        if name == "queue_latency":
            return queue_latency(eng.broker, eng.clock.now()) or 0.0
        if name == "dlq_growth":
            return float(h.dlq_growth())
        if name in ("p99_latency", "p50_latency"):
            v = h.pool_p99 if name == "p99_latency" else h.pool_p50
            return v if v is not None else 0.0
        if name == "live_consumers":
            if eng.desired == 0 or eng.stopping:
                return math.nan  # a pool meant to be empty is not unhealthy
            # A consumer still cold-starting is healthy, just not ready yet.
            return float(
                sum(
                    1
                    for c in eng.consumers.values()
                    if not c.hung and (c.accepting or (not c.warm and not c.draining))
                )
            )
        if name == "failed_consumers":
            now = eng.clock.now()
            return float(
                sum(
                    1
                    for c in eng.ended
                    if c.state == ConsumerState.FAILED and c.ended_at and now - c.ended_at <= 60
                )
            )
        if name == "publish_rate":
            return h.publish_rate.rate()
        if name == "ack_rate":
            return h.ack_rate.rate()
        if name == "loop_lag":
            return h.loop_lag
        if name == "autoscaler_at_max":
            last = eng.autoscaler_view(eng.clock.now()).last if eng.autoscale else None
            return 1.0 if last is not None and last.reason == ScaleReason.AT_MAX else 0.0
        raise RuleError(f"unknown metric {name!r}")

    def evaluate(self, now: float) -> None:  # a health-tick hook
        """Check every rule once."""
        alerts = self.engine.alerts
        for rule in self.rules:
            value = self.metric(rule.metric)
            holds = not math.isnan(value) and COMPARISONS[rule.op](value, rule.threshold)
            if holds:
                since = self._since.setdefault(rule.name, now)
                if now - since >= rule.for_s and not alerts.is_active(rule.name):
                    text = rule.message or f"{rule.metric} {rule.op} {rule.threshold:g}"
                    shown = f"{value:g}"
                    text = (  # a message may place the value itself
                        text.replace("{value}", shown)
                        if "{value}" in text
                        else f"{text} (now {shown})"
                    )
                    alerts.fire(rule.name, rule.severity, text)
            else:
                self._since.pop(rule.name, None)
                if alerts.is_active(rule.name):
                    alerts.resolve(rule.name)
