"""Forecasting the arrival rate: Holt's double exponential smoothing.

Holt tracks a level and a trend, so a ramp is extrapolated instead of lagged
behind (a plain moving average or simple exponential smoothing always trails a
ramp by its window); with one step per decision interval it costs O(1).
"""

from __future__ import annotations


class Holt:
    """Level + trend smoothing of a series sampled at a fixed interval."""

    __slots__ = ("alpha", "beta", "level", "trend", "n")

    def __init__(self, alpha: float = 0.5, beta: float = 0.3) -> None:
        self.alpha = alpha
        self.beta = beta
        self.level = 0.0
        self.trend = 0.0
        self.n = 0

    def update(self, value: float) -> None:
        """Feed the newest observation."""
        if self.n == 0:
            self.level = value
        elif self.n == 1:
            self.trend = value - self.level
            self.level = value
        else:
            prev = self.level
            self.level = self.alpha * value + (1 - self.alpha) * (self.level + self.trend)
            self.trend = self.beta * (self.level - prev) + (1 - self.beta) * self.trend
        self.n += 1

    def forecast(self, steps: float) -> float:
        """The value `steps` intervals ahead (never negative)."""
        return max(0.0, self.level + steps * self.trend)
