"""When messages arrive: offsets (seconds from the run's start) drawn from a rate."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

EVEN_STEP = 0.001  # integration step for evenly spaced arrivals, seconds


def arrival_times(
    rate: Callable[[float], float],
    max_rate: float,
    rng: random.Random,
    *,
    mode: str = "poisson",
    until: float = math.inf,
) -> Iterator[float]:
    """Offsets of arrivals at `rate(t)` msg/s, ascending, up to `until`.

    poisson: a non-homogeneous Poisson process by thinning (random gaps).
    even: one arrival each time the integral of the rate crosses a whole number.
    """
    if max_rate <= 0:
        return
    t = 0.0
    if mode == "even":
        acc = 0.0
        step = 0
        while t < until:
            r = rate(t)
            nxt = acc + r * EVEN_STEP
            k = math.floor(acc) + 1
            while k <= nxt:  # the integral crosses k within this step: interpolate where
                at = t + (k - acc) / r
                if at >= until:
                    return
                yield at
                k += 1
            acc = nxt
            step += 1
            t = step * EVEN_STEP
        return
    while True:
        t += rng.expovariate(max_rate)
        if t >= until:
            return
        if rng.random() * max_rate <= rate(t):
            yield t
