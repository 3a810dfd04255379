"""Bounded metrics: a log-bucketed latency histogram and windowed rates.

Recording a latency is one bisection (in C) and one list increment; memory never grows
with the number of messages.
"""

from __future__ import annotations

import math
from bisect import bisect_right as _bisect_right
from collections import deque

_SUB = 8  # sub-buckets per power of two: about 9% relative error at worst
_MIN_EXP = -20  # below ~1 microsecond everything is one bucket
_MAX_EXP = 12  # above ~68 minutes everything is one bucket
_NBUCKETS = (_MAX_EXP - _MIN_EXP + 1) * _SUB


def _bucket_lower(index: int) -> float:
    e, sub = divmod(index, _SUB)
    return math.ldexp(0.5 + sub / (2 * _SUB), e + _MIN_EXP)


# The lower edge of every bucket but the first: bucket i holds [edge i, edge i+1), the
# first also everything below, the last everything above.
_LOWER_EDGES = [_bucket_lower(i) for i in range(1, _NBUCKETS)]


def _bucket_value(index: int) -> float:
    """Upper edge of a bucket, so quantiles never under-report."""
    e, sub = divmod(index, _SUB)
    return math.ldexp(0.5 + (sub + 1) / (2 * _SUB), e + _MIN_EXP)


class LatencyHistogram:
    """Latencies of a recent window: two generations, the older dropped on `rotate`."""

    __slots__ = ("_cur", "_prev", "_past", "count", "total")

    def __init__(self) -> None:
        self._cur = [0] * _NBUCKETS
        self._prev = [0] * _NBUCKETS
        self._past = [0] * _NBUCKETS  # generations older than the window (for all-time)
        self.count = 0  # all-time
        self.total = 0.0  # all-time, seconds

    def record(self, seconds: float) -> None:
        """Add one observation."""
        self._cur[_bisect_right(_LOWER_EDGES, seconds)] += 1
        self.count += 1
        self.total += seconds

    def rotate(self) -> None:
        """Start a new generation; the window is now the last one plus this."""
        past = self._past
        for i, v in enumerate(self._prev):
            if v:
                past[i] += v
        self._prev = self._cur
        self._cur = [0] * _NBUCKETS

    def all_time_into(self, counts: list[int]) -> None:
        """Add every observation ever recorded to `counts` (for exported histograms)."""
        for i, (a, b, c) in enumerate(zip(self._cur, self._prev, self._past, strict=True)):
            if a or b or c:
                counts[i] += a + b + c

    def merge_into(self, counts: list[int]) -> None:
        """Add this histogram's window to `counts` (for pool-wide quantiles)."""
        for i, (a, b) in enumerate(zip(self._cur, self._prev, strict=True)):
            if a or b:
                counts[i] += a + b

    def quantile(self, q: float) -> float | None:
        """The q-quantile of the window in seconds, or None with no data."""
        counts = [0] * _NBUCKETS
        self.merge_into(counts)
        return quantile_of(counts, q)


def bucket_upper_edges() -> list[float]:
    """The upper edge of every bucket, in seconds, in order."""
    return [_bucket_value(i) for i in range(_NBUCKETS)]


def empty_counts() -> list[int]:
    """A zeroed bucket array to merge histograms into."""
    return [0] * _NBUCKETS


def quantile_of(counts: list[int], q: float) -> float | None:
    """The q-quantile of merged bucket counts, or None if empty."""
    n = sum(counts)
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))
    seen = 0
    for i, c in enumerate(counts):
        seen += c
        if seen >= rank:
            return _bucket_value(i)
    return _bucket_value(_NBUCKETS - 1)


class RateMeter:
    """Rate of a growing counter over the last `window` seconds, from samples."""

    __slots__ = ("_samples", "_window")

    def __init__(self, window: float = 5.0) -> None:
        self._samples: deque[tuple[float, int]] = deque()
        self._window = window

    def sample(self, now: float, value: int) -> None:
        """Record the counter's value at `now`."""
        self._samples.append((now, value))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
            self._samples.popleft()

    def rate(self) -> float:
        """Per second over the window (0.0 until two samples exist)."""
        if len(self._samples) < 2:
            return 0.0
        (t0, v0), (t1, v1) = self._samples[0], self._samples[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else 0.0
