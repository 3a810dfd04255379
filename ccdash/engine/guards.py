"""Guards around the handler: a circuit breaker per message type and a token bucket,
and `HandlerGuards`, the engine's set of them that consumers consult."""

from __future__ import annotations

import contextlib
from typing import Any

from ccdash.brokers.base import Broker, Delivery, ReceiptRejected
from ccdash.clock import Clock
from ccdash.engine.alerts import AlertBook
from ccdash.engine.config import EngineConfig
from ccdash.engine.events import Emit, EventKind
from ccdash.engine.states import BreakerState, Severity

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `cooldown` lets one trial
    through (half-open); a success closes it, a failure opens it again.

    While open, the engine delays messages of that type and retries them later;
    it never dead-letters them because the breaker is open."""

    __slots__ = ("threshold", "cooldown", "state", "failures", "opened_at", "_trial")

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._trial = False

    def wait_time(self, now: float) -> float:
        """0.0 if a call may go ahead now, else how long to delay it."""
        if self.state == CLOSED:
            return 0.0
        if self.state == OPEN:
            left = self.opened_at + self.cooldown - now
            if left > 0:
                return left
            self.state = HALF_OPEN
            self._trial = False
        if not self._trial:  # half-open: exactly one trial at a time
            self._trial = True
            return 0.0
        return max(self.cooldown / 4, 0.01)

    def success(self) -> None:
        """A call succeeded."""
        self.state = CLOSED
        self.failures = 0
        self._trial = False

    def failure(self, now: float) -> bool:
        """A call failed; returns True if this opened the breaker."""
        self.failures += 1
        if self.state == HALF_OPEN or (self.state == CLOSED and self.failures >= self.threshold):
            self.state = OPEN
            self.opened_at = now
            self._trial = False
            return True
        return False


class TokenBucket:
    """At most `rate` starts per second on average, bursts up to `burst`."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token; returns 0.0, or the seconds to wait before the start is allowed
        (the token is reserved either way)."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class HandlerGuards:
    """The rate limit and the circuit breakers (one per message type) of one engine."""

    def __init__(
        self, clock: Clock, broker: Broker, emit: Emit, alerts: AlertBook, config: EngineConfig
    ) -> None:
        self.clock = clock
        self.broker = broker
        self.emit = emit
        self.alerts = alerts
        self.rate_limit = config.rate_limit
        self.rate_burst = config.rate_burst
        self.threshold = config.breaker_threshold
        self.cooldown = config.breaker_cooldown
        self.type_key = config.type_key
        # Read by consumers once per loop: guards cost nothing when none is set.
        self.active = self.rate_limit is not None or self.threshold is not None
        self.breakers: dict[str, CircuitBreaker] = {}
        self.bucket: TokenBucket | None = None

    def start(self) -> None:
        """Fill the token bucket (the clock starts with the engine)."""
        if self.rate_limit is not None:
            burst = float(self.rate_burst or max(1, self.rate_limit))
            self.bucket = TokenBucket(self.rate_limit, burst, self.clock.now())

    def message_type(self, d: Delivery) -> str:
        """The circuit-breaker key of a delivery: its body's type field, if any."""
        body: Any = d.body
        if isinstance(body, dict):
            t = body.get(self.type_key)
            if isinstance(t, str):
                return t
        return "default"

    def _breaker(self, t: str) -> CircuitBreaker:
        br = self.breakers.get(t)
        if br is None:
            assert self.threshold is not None
            br = self.breakers[t] = CircuitBreaker(self.threshold, self.cooldown)
        return br

    async def hold_back(self, d: Delivery) -> bool:
        """Apply the circuit breaker and the rate limit; True if the delivery was deferred."""
        now = self.clock.now()
        if self.threshold is not None:
            wait = self._breaker(self.message_type(d)).wait_time(now)
            if wait > 0:  # breaker open: try again later, never dead-letter for it
                with contextlib.suppress(ReceiptRejected):  # its lease is gone (a peer
                    await self.broker.defer(d.receipt, wait)  # took it): not ours to run
                return True
        if self.bucket is not None:
            wait = self.bucket.take(now)
            if wait > 0:
                await self.clock.sleep(wait)
        return False

    def succeeded(self, d: Delivery) -> None:
        """Close the breaker of this delivery's type (consumers call it only when some
        breaker exists)."""
        t = self.message_type(d)
        br = self.breakers.get(t)
        if br is not None and br.state != CLOSED:
            br.success()
            self.emit(EventKind.BREAKER_CLOSED, f"circuit breaker closed for {t}")
            self.alerts.resolve("circuit-open", t)

    def failed(self, d: Delivery) -> None:
        """Count a failure against the breaker of this delivery's type."""
        if self.threshold is None:
            return
        t = self.message_type(d)
        if self._breaker(t).failure(self.clock.now()):
            self.emit(EventKind.BREAKER_OPENED, f"circuit breaker opened for {t}", type=t)
            self.alerts.fire(
                "circuit-open", Severity.WARNING, f"circuit breaker open for {t}", key=t
            )
