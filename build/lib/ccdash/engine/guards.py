"""Guards around the handler: a circuit breaker per message type and a token bucket."""

from __future__ import annotations

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


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
