"""EngineConfig: every engine setting, checked once when it is made."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, fields

from ccdash.brokers.base import DEFAULT_MAX_BODY, QueueConfig
from ccdash.engine.balancers import BALANCERS
from ccdash.engine.rules import AlertRule, default_rules


class ConfigError(ValueError):
    """A setting is out of range or contradicts another; the message names it."""


DAY = 86_400.0
# Upper bounds: beyond them a setting is a typo, not a configuration (a lease of
# a year, a million deliveries held per consumer). Lower bounds are in validate().
LIMITS: dict[str, float] = {
    "consumers": 10_000,
    "min_consumers": 10_000,
    "max_consumers": 10_000,
    "visibility_timeout": DAY,
    "heartbeat_interval": 3600,
    "heartbeat_timeout": DAY,
    "max_attempts": 1000,
    "prefetch": 10_000,
    "handler_timeout": DAY,
    "backoff_base": 3600,
    "backoff_max": DAY,
    "capacity": 100_000_000,
    "dedup_window": 7 * DAY,
    "shutdown_grace": 3600,
    "restart_limit": 1_000_000,
    "restart_window": DAY,
    "batch_size": 10_000,
    "batch_linger": 60,
    "rate_limit": 1_000_000,
    "rate_burst": 1_000_000,
    "breaker_threshold": 1_000_000,
    "breaker_cooldown": DAY,
    "startup_delay": 3600,
    "scale_interval": 3600,
    "target_backlog_per_consumer": 1_000_000,
    "max_scale_step": 10_000,
    "scale_down_window": DAY,
    "scale_cooldown": DAY,
    "forecast_horizon": DAY,
    "latency_slo": DAY,
    "max_body_bytes": 512 * 1024 * 1024,
}


# The health tick runs every heartbeat_interval (beats, lease keeping, failure
# detection, autoscaler, alert rules): a tighter one is load, not health. It spun the
# loop at 0.0001 s.
MIN_HEARTBEAT = 0.05


def _num(x: float) -> str:
    return str(int(x)) if x == int(x) and abs(x) < 1e15 else f"{x:g}"


# What a setting's annotation asks for: the check and its words (None allowed where the
# annotation says `| None`). bool is an int to Python, never a count or a time here.
_KINDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
}


def _check_type(name: str, annotation: object, v: object) -> None:
    kind, _, optional = str(annotation).partition(" | ")
    if kind not in _KINDS or (v is None and optional == "None"):
        return
    ok, words = _KINDS[kind]
    if not ok(v):
        shown = repr(v) if isinstance(v, int | float | str | bool) else type(v).__name__
        raise ConfigError(f"{name} must be {words}, got {shown[:60]}")


@dataclass(slots=True)
class EngineConfig:
    """Settings of one engine. Times are in seconds."""

    consumers: int = 4
    min_consumers: int = 1
    max_consumers: int = 64
    balancer: str = "round-robin"
    visibility_timeout: float = 30.0
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 3.0
    max_attempts: int = 5
    prefetch: int = 1
    handler_timeout: float | None = None  # enforced at heartbeat granularity
    backoff_base: float = 0.1
    backoff_max: float = 30.0
    capacity: int | None = None  # bound on messages not yet acked/dead-lettered
    dedup_window: float = 300.0
    shutdown_grace: float = 5.0
    restart_limit: int = 10  # at most this many restarts ...
    restart_window: float = 60.0  # ... within this many seconds, per pool
    batch_size: int = 1
    batch_linger: float = 0.05
    rate_limit: float | None = None  # handler starts per second, pool-wide
    rate_burst: int | None = None
    breaker_threshold: int | None = None  # consecutive failures per type that open it
    breaker_cooldown: float = 5.0
    type_key: str = "type"  # a dict body's field naming its message type
    startup_delay: float = 0.0  # a new consumer's cold start before it takes work
    autoscale: bool = False
    scale_interval: float = 1.0  # seconds between autoscaler decisions
    target_backlog_per_consumer: float = 10.0
    target_utilisation: float = 0.7  # busy fraction the autoscaler sizes for
    max_scale_step: int = 4  # consumers added or removed per decision at most
    scale_down_window: float = 30.0  # scale down only to the highest recommendation in it
    scale_cooldown: float = 3.0  # seconds after a change before the next one
    predictive: bool = True  # also size for the forecast arrival rate
    forecast_horizon: float = 10.0  # seconds ahead the forecast looks
    alert_rules: tuple[AlertRule, ...] | None = None  # None: the built-in defaults
    latency_slo: float | None = None  # p99 handler latency target, seconds
    seed: int | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY  # a bigger body is refused at publish

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad setting."""
        for f in fields(self):
            v = getattr(self, f.name)
            _check_type(f.name, f.type, v)
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{f.name} must be a finite number, got {v}")
            limit = LIMITS.get(f.name)
            if limit is not None and isinstance(v, int | float) and v > limit:
                raise ConfigError(f"{f.name} must be at most {_num(limit)}, got {_num(v)}")
        hb = self.heartbeat_interval
        if not hb >= MIN_HEARTBEAT:  # NaN too
            raise ConfigError(
                f"heartbeat_interval must be from {_num(MIN_HEARTBEAT)} to "
                f"{_num(LIMITS['heartbeat_interval'])} seconds, got {_num(hb)}"
            )
        for name in (
            "visibility_timeout",
            "heartbeat_timeout",
            "scale_interval",
            "target_backlog_per_consumer",
            "forecast_horizon",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be greater than 0, got {_num(getattr(self, name))}")
        for name in (
            "max_attempts",
            "prefetch",
            "batch_size",
            "max_consumers",
            "restart_limit",
            "max_body_bytes",
            "max_scale_step",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {_num(getattr(self, name))}")
        for name in (
            "consumers",
            "min_consumers",
            "startup_delay",
            "shutdown_grace",
            "backoff_base",
            "backoff_max",
            "batch_linger",
            "dedup_window",
            "breaker_cooldown",
            "restart_window",
            "scale_down_window",
            "scale_cooldown",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {_num(getattr(self, name))}")
        if self.min_consumers > self.max_consumers:
            raise ConfigError(
                f"min_consumers ({self.min_consumers}) is above max_consumers "
                f"({self.max_consumers})"
            )
        if not self.min_consumers <= self.consumers <= self.max_consumers:
            raise ConfigError(
                f"consumers ({self.consumers}) must be within min_consumers "
                f"({self.min_consumers}) and max_consumers ({self.max_consumers})"
            )
        if self.heartbeat_interval >= self.heartbeat_timeout:
            raise ConfigError(
                f"heartbeat_interval ({self.heartbeat_interval:g}) must be below "
                f"heartbeat_timeout ({self.heartbeat_timeout:g})"
            )
        if self.heartbeat_timeout >= self.visibility_timeout:
            raise ConfigError(
                f"heartbeat_timeout ({self.heartbeat_timeout}) must be below "
                f"visibility_timeout ({self.visibility_timeout})"
            )
        if self.balancer not in BALANCERS:
            raise ConfigError(
                f"unknown balancer {self.balancer!r}; choose one of: {', '.join(BALANCERS)}"
            )
        for name in ("handler_timeout", "rate_limit", "latency_slo"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ConfigError(f"{name} must be greater than 0 (or unset), got {_num(v)}")
        if not 0 < self.target_utilisation <= 1:
            raise ConfigError(
                f"target_utilisation must be within (0, 1], got {_num(self.target_utilisation)}"
            )
        if self.alert_rules is not None:
            for rule in self.alert_rules:
                if not isinstance(rule, AlertRule):
                    raise ConfigError(f"alert_rules must hold AlertRule objects, got {rule!r}")
        for name in ("capacity", "breaker_threshold", "rate_burst"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"{name} must be at least 1 (or unset), got {_num(v)}")

    def rules(self) -> tuple[AlertRule, ...]:
        """The alert rules in force: the configured ones, or the built-in defaults."""
        if self.alert_rules is not None:
            return self.alert_rules
        return default_rules(self.latency_slo)

    def queue_config(self, rng: random.Random) -> QueueConfig:
        """The broker settings these engine settings imply (the broker's copy is the one
        in force: leases, lease keeping and the dashboard read it from there)."""
        return QueueConfig(
            visibility_timeout=self.visibility_timeout,
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            capacity=self.capacity,
            dedup_window=self.dedup_window,
            rng=random.Random(rng.random()),
            max_body_bytes=self.max_body_bytes,
        )

    @property
    def holding_limit(self) -> int:
        """Deliveries one consumer may hold: prefetch, but never less than a batch."""
        return max(self.prefetch, self.batch_size)
