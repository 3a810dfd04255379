"""Capped exponential backoff with full jitter: the one copy, for retries and reconnects.

Full jitter (a uniform draw from zero to the capped exponential) spreads the
retries of many clients that failed together, so they do not come back in step.
"""

from __future__ import annotations

import random


def full_jitter(rng: random.Random, base: float, cap: float, failures: int) -> float:
    """A delay after `failures` failures in a row (1 = the first): U(0, min(cap, base·2^(n-1)))."""
    return rng.uniform(0.0, min(cap, base * 2.0 ** min(max(failures, 1) - 1, 60)))


class Backoff:
    """Reconnect delays that grow with each failure in a row; a success starts again."""

    def __init__(self, base: float = 0.05, cap: float = 2.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next try; grows with each failure in a row."""
        self.failures += 1
        return full_jitter(self.rng, self.base, self.cap, self.failures)

    def reset(self) -> None:
        """A success: start again from the base."""
        self.failures = 0
