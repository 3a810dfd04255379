"""Forecasting the arrival rate: Holt's double exponential smoothing.

Holt tracks a level and a trend, so a ramp is extrapolated instead of lagged
behind (a plain moving average or simple exponential smoothing always trails a
ramp by its window); with one step per decision interval it costs O(1).

A damped trend (`phi` < 1, Gardner & McKenzie) makes each further step count less,
so a load that swings (a sine, noise) is not extrapolated from 0 to twice its peak
over a long horizon; `phi` = 1 is plain Holt.
"""

from __future__ import annotations


class Holt:
    """Level + trend smoothing of a series sampled at a fixed interval."""

    __slots__ = ("alpha", "beta", "phi", "level", "trend", "n")

    def __init__(self, alpha: float = 0.5, beta: float = 0.3, phi: float = 1.0) -> None:
        self.alpha = alpha
        self.beta = beta
        self.phi = phi
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
            damped = self.phi * self.trend
            self.level = self.alpha * value + (1 - self.alpha) * (self.level + damped)
            self.trend = self.beta * (self.level - prev) + (1 - self.beta) * damped
        self.n += 1

    def forecast(self, steps: float) -> float:
        """The value `steps` intervals ahead (never negative)."""
        phi = self.phi
        ahead = steps if phi == 1.0 else phi * (1 - phi**steps) / (1 - phi)
        return max(0.0, self.level + ahead * self.trend)
