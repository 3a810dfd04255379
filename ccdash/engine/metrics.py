"""Bounded metrics: a log-bucketed latency histogram and windowed rates.

Recording a latency is one list append: the latencies are binned in batches (a
bisection each, counted in C) when the histogram is read, rotated, or holds
`PENDING_LIMIT` of them. Memory never grows with the number of messages.
"""

from __future__ import annotations

import math
from bisect import bisect_left as _bisect_left
from bisect import bisect_right as _bisect_right
from collections import Counter, deque
from itertools import accumulate, islice, repeat
from operator import add, mul

_SUB = 8  # sub-buckets per power of two: about 9% relative error at worst
_MIN_EXP = -20  # below ~1 microsecond everything is one bucket
_MAX_EXP = 12  # above ~68 minutes everything is one bucket
_NBUCKETS = (_MAX_EXP - _MIN_EXP + 1) * _SUB
PENDING_LIMIT = 256  # latencies recorded but not binned yet, at most (see the class)
EWMA_ALPHA = 0.3  # the weight of the newest latency in `LatencyHistogram.ewma`
_EWMA_SPAN = 512  # latencies folded at once, at most (older ones weigh < 1e-79)
# The weights of the newest k latencies folded at once: _EWMA_WEIGHTS[-k:] (the newest
# EWMA_ALPHA, each older one 1 - EWMA_ALPHA times the next): a fold is a sum in C.
_EWMA_WEIGHTS = [EWMA_ALPHA * (1 - EWMA_ALPHA) ** i for i in reversed(range(_EWMA_SPAN))]


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
    """Latencies of a recent window: two generations, the older dropped on `rotate`.

    With a `parent`, every observation is recorded there too: the pool's histogram
    is fed as messages finish, never merged from its consumers' on a tick. Latencies
    wait in `pending` until the next read of this histogram (`digest`), so the
    parent is complete once its children are digested (the health tick does it).

    The per-message path may append to `pending` itself, as `record` does: then it
    calls `digest` once `pending` holds PENDING_LIMIT latencies, or whenever it
    pauses (a consumer: at least every TURN_EVERY of handling).

    It keeps an exponentially weighted mean of the latencies too (`ewma`), folded in
    as it is read or when the latencies are binned, not per observation."""

    __slots__ = (
        "_cur",
        "_prev",
        "_past",
        "_count",
        "_total",
        "pending",
        "parent",
        "_mark",
        "_prev_n",
        "_rotations",
        "_cached",
        "_cache_key",
        "_ewma",
        "_folded",
    )

    def __init__(self, parent: LatencyHistogram | None = None) -> None:
        self._cur = [0] * _NBUCKETS
        self._prev = [0] * _NBUCKETS
        self._past = [0] * _NBUCKETS  # generations older than the window (for all-time)
        self._count = 0  # all-time, binned
        self._total = 0.0  # all-time, seconds, binned
        self.pending: list[float] = []  # recorded, not binned yet (the list stays the same)
        self.parent = parent
        self._mark = 0  # count at the last rotation
        self._prev_n = 0  # observations in _prev
        self._rotations = 0
        self._cached: tuple[float | None, float | None] = (None, None)
        self._cache_key = (0, 0)
        self._ewma = 0.0
        self._folded = 0  # pending latencies already in _ewma

    def record(self, seconds: float, *, in_ewma: bool = True) -> None:
        """Add one observation (to the quantiles and counts; to the ewma unless not
        `in_ewma`)."""
        pending = self.pending
        if not in_ewma:
            self._fold(self._folded)  # what came before, then skip this one
            self._folded = len(pending) + 1
        pending.append(seconds)
        if len(pending) >= PENDING_LIMIT:
            self.digest()

    def digest(self) -> None:
        """Bin the pending latencies, here and in the parent: a bisection each (in C,
        counted in C), then one increment per bucket used."""
        pending = self.pending
        if not pending:
            return
        n = len(pending)
        total = sum(pending)
        used = Counter(map(_bisect_right, repeat(_LOWER_EDGES, n), pending))
        self._fold(self._folded)
        pending.clear()
        self._folded = 0
        cur = self._cur
        for i, k in used.items():
            cur[i] += k
        self._count += n
        self._total += total
        parent = self.parent
        if parent is not None:
            parent.digest()  # its own pending first, so its count stays in order
            cur = parent._cur
            for i, k in used.items():
                cur[i] += k
            parent._count += n
            parent._total += total

    def ewma(self) -> float:
        """The exponentially weighted mean of every latency recorded (0.0 before the
        first), the newest weighing EWMA_ALPHA: a recent typical latency."""
        self._fold(self._folded)
        self._folded = len(self.pending)
        return self._ewma

    def _fold(self, start: int) -> None:
        """Fold pending[start:] into the ewma, as one at a time would."""
        pending = self.pending
        k = len(pending) - start
        if k > _EWMA_SPAN:
            start, k = len(pending) - _EWMA_SPAN, _EWMA_SPAN
        if k > 0:
            fresh = sum(map(mul, _EWMA_WEIGHTS[-k:], islice(pending, start, None)))
            self._ewma = self._ewma * (1 - EWMA_ALPHA) ** k + fresh

    @property
    def count(self) -> int:
        """Observations ever recorded."""
        self.digest()
        return self._count

    @property
    def total(self) -> float:
        """Sum of every observation ever recorded, seconds."""
        self.digest()
        return self._total

    def rotate(self) -> None:
        """Start a new generation; the window is now the last one plus this. Free for
        a histogram that recorded nothing over the whole window."""
        self.digest()
        fresh = self._count - self._mark
        if not fresh and not self._prev_n:
            return
        self._past = list(map(add, self._past, self._prev))  # in C: a tick per consumer
        self._prev = self._cur
        self._cur = [0] * _NBUCKETS
        self._mark = self._count
        self._prev_n = fresh
        self._rotations += 1

    def all_time_into(self, counts: list[int]) -> None:
        """Add every observation ever recorded to `counts` (for exported histograms)."""
        self.digest()
        counts[:] = map(add, counts, map(add, self._past, map(add, self._cur, self._prev)))

    def merge_into(self, counts: list[int]) -> None:
        """Add this histogram's window to `counts`."""
        self.digest()
        counts[:] = map(add, counts, map(add, self._cur, self._prev))

    def quantile(self, q: float) -> float | None:
        """The q-quantile of the window in seconds, or None with no data."""
        counts = [0] * _NBUCKETS
        self.merge_into(counts)
        return quantile_of(counts, q)

    def p50_p99(self) -> tuple[float | None, float | None]:
        """The window's median and 99th percentile in one pass, kept until the next
        observation or rotation (so reading an idle histogram costs nothing)."""
        self.digest()
        key = (self._count, self._rotations)
        if key == self._cache_key:
            return self._cached
        n = self._count - self._mark + self._prev_n
        out: tuple[float | None, float | None] = (None, None)
        if n > 0:  # the first buckets whose running totals reach the ranks, found in C
            seen = list(accumulate(map(add, self._cur, self._prev)))
            out = (_rank_value(seen, 0.5 * n), _rank_value(seen, 0.99 * n))
        self._cached, self._cache_key = out, key
        return out


def bucket_upper_edges() -> list[float]:
    """The upper edge of every bucket, in seconds, in order."""
    return [_bucket_value(i) for i in range(_NBUCKETS)]


def empty_counts() -> list[int]:
    """A zeroed bucket array to merge histograms into."""
    return [0] * _NBUCKETS


def quantile_of(counts: list[int], q: float) -> float | None:
    """The q-quantile of merged bucket counts, or None if empty."""
    seen = list(accumulate(counts))
    n = seen[-1] if seen else 0
    if n == 0:
        return None
    return _rank_value(seen, q * n)


def _rank_value(seen: list[int], rank: float) -> float:
    """The upper edge of the first bucket whose running total `seen` reaches `rank`
    (at least 1)."""
    i = _bisect_left(seen, max(1, math.ceil(rank)))
    return _bucket_value(min(i, len(seen) - 1))


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
