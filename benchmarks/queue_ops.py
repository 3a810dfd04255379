"""Memory-broker hot-path benchmark: throughput, lease expiry cost, memory per lease.

Run `python benchmarks/queue_ops.py` (add `--quick` for a smoke run). Every figure
is measured in the same run, so the ratios compare like with like:

(a) receive+ack cycles per second against put+get on a bare asyncio.Queue;
(b) milliseconds to expire k=1,000 leases while 1,000,000 are held;
(c) bytes the broker holds per in-flight lease, beyond the payload.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ccdash.brokers.base import QueueConfig
from ccdash.brokers.memory import MemoryBroker
from ccdash.clock import FakeClock, MonotonicClock

TARGET_RATIO = 0.5  # receive+ack at least half the asyncio.Queue floor
TARGET_EXPIRY_MS = 10.0  # expiring 1,000 of 1,000,000 leases
TARGET_BYTES_PER_LEASE = 400


# -- (a) throughput ---------------------------------------------------------


def filled_broker(n: int, size: int) -> MemoryBroker:
    broker = MemoryBroker(QueueConfig(visibility_timeout=300.0), clock=MonotonicClock())
    body = b"x" * size
    for _ in range(n):
        broker.publish_nowait(body)
    return broker


def time_broker_single(n: int, size: int) -> float:
    broker = filled_broker(n, size)
    receive, ack = broker.receive_nowait, broker.ack_nowait
    holders = ["c"]
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(n):
        ack(receive(holders)[0].receipt)
    elapsed = time.perf_counter() - t0
    assert broker.stats().acked == n
    return elapsed


def time_broker_batch(n: int, size: int, batch: int = 32) -> float:
    broker = filled_broker(n, size)
    receive, ack = broker.receive_nowait, broker.ack_nowait
    holders = ["c"] * batch
    gc.collect()
    t0 = time.perf_counter()
    while got := receive(holders):
        for d in got:
            ack(d.receipt)
    elapsed = time.perf_counter() - t0
    assert broker.stats().acked == n
    return elapsed


def time_broker_awaited(n: int, size: int) -> float:
    broker = filled_broker(n, size)
    holders = ["c"]

    async def cycle() -> float:
        receive, ack = broker.receive, broker.ack
        t0 = time.perf_counter()
        for _ in range(n):
            await ack((await receive(holders))[0].receipt)
        return time.perf_counter() - t0

    gc.collect()
    return asyncio.run(cycle())


def time_queue_awaited(n: int, size: int) -> float:
    body = b"x" * size

    async def cycle() -> float:
        q: asyncio.Queue[bytes] = asyncio.Queue()
        put, get = q.put, q.get
        t0 = time.perf_counter()
        for _ in range(n):
            await put(body)
            await get()
        return time.perf_counter() - t0

    gc.collect()
    return asyncio.run(cycle())


def time_queue_nowait(n: int, size: int) -> float:
    body = b"x" * size

    async def cycle() -> float:
        q: asyncio.Queue[bytes] = asyncio.Queue()
        put, get = q.put_nowait, q.get_nowait
        t0 = time.perf_counter()
        for _ in range(n):
            put(body)
            get()
        return time.perf_counter() - t0

    gc.collect()
    return asyncio.run(cycle())


def bench_throughput(n: int, size: int, repeats: int) -> float:
    print(f"(a) receive+ack cycles/s, {n:,} messages of {size} bytes, best of {repeats}")
    variants: list[tuple[str, Callable[[int, int], float]]] = [
        ("asyncio.Queue await put + await get (floor)", time_queue_awaited),
        ("asyncio.Queue put_nowait + get_nowait", time_queue_nowait),
        ("broker receive_nowait(['c']) + ack_nowait", time_broker_single),
        ("broker receive_nowait(32 holders) + ack_nowait", time_broker_batch),
        ("broker await receive(['c']) + await ack", time_broker_awaited),
    ]
    rounds: list[list[float]] = []
    for _ in range(repeats):  # interleaved, so background load hits every variant alike
        rounds.append([run(n, size) for _, run in variants])
    best = [min(r[i] for r in rounds) for i in range(len(variants))]
    floor, floor_nowait, single, batch, awaited = (n / t for t in best)
    for (label, _), seconds in zip(variants, best, strict=True):
        print(f"    {label:<48} {n / seconds:>12,.0f}/s")
    # Each round's own ratio, taken seconds apart, says how steady the machine was.
    spread = sorted(r[0] / r[2] for r in rounds)
    ratio = single / floor
    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(
        f"    ratio receive+ack / awaited put+get: {ratio:.2f} "
        f"(batch 32: {batch / floor:.2f}, awaited API: {awaited / floor:.2f}; "
        f"target >= {TARGET_RATIO:.2f}: {verdict})"
    )
    print(
        f"    per-round ratios: min {spread[0]:.2f}, median {statistics.median(spread):.2f}, "
        f"max {spread[-1]:.2f}"
    )
    print(
        f"    ratio receive+ack / nowait put+get:  {single / floor_nowait:.2f} "
        f"(batch 32: {batch / floor_nowait:.2f})"
    )
    return ratio


# -- (b) expiry -------------------------------------------------------------


def bench_expiry(total: int, k: int, rounds: int) -> float:
    """Hold `total` leases granted k at a time, 1 ms apart; expire one group per round."""
    print(f"(b) expiring {k:,} of {total:,} held leases, {rounds} rounds")
    clock = FakeClock()
    broker = MemoryBroker(QueueConfig(visibility_timeout=30.0), clock=clock)
    for _ in range(total):
        broker.publish_nowait(b"x" * 16)
    holders = [f"c{i}" for i in range(k)]
    deadlines = []
    for _ in range(total // k):
        deadlines.append(broker.receive_nowait(holders)[0].deadline)
        clock._now += 0.001
    held = broker.stats().in_flight
    assert held == total, held

    t0 = time.perf_counter()
    broker.stats()  # nothing due yet: the cost of a reap that finds nothing
    idle_ms = (time.perf_counter() - t0) * 1000

    costs = []
    for i in range(rounds):
        clock._now = deadlines[i]  # exactly group i is due now
        gc.collect()
        t0 = time.perf_counter()
        stats = broker.stats()
        costs.append((time.perf_counter() - t0) * 1000)
        assert stats.in_flight == total - (i + 1) * k, stats
        assert stats.ready == (i + 1) * k, stats
    worst, median = max(costs), statistics.median(costs)
    verdict = "met" if median < TARGET_EXPIRY_MS else "MISSED"
    print(f"    reap finding nothing: {idle_ms:.3f} ms")
    print(
        f"    reap expiring {k:,}: median {median:.2f} ms, worst {worst:.2f} ms "
        f"(target < {TARGET_EXPIRY_MS:.0f} ms: {verdict})"
    )
    return median


# -- (c) memory -------------------------------------------------------------


def bench_memory(n: int, size: int, holders: int = 100) -> float:
    """Traced bytes per message the broker holds: ready, then leased (payload subtracted)."""
    print(f"(c) memory per in-flight lease, {n:,} leases, {size}-byte payloads, {holders} holders")
    names = [f"consumer-{i}" for i in range(holders)]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    broker = MemoryBroker(QueueConfig(visibility_timeout=300.0), clock=MonotonicClock())
    payload_bytes = 0
    for i in range(n):
        body = i.to_bytes(8, "little") * (size // 8)  # a distinct payload per message
        payload_bytes += sys.getsizeof(body)
        broker.publish_nowait(body)
    ready = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        broker.receive_nowait([names[i % holders]])  # the Delivery is the consumer's
    leased = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert broker.stats().in_flight == n
    per_ready = (ready - base - payload_bytes) / n
    per_lease = (leased - base - payload_bytes) / n
    verdict = "met" if per_lease < TARGET_BYTES_PER_LEASE else "MISSED"
    print(f"    payload objects: {payload_bytes / n:.0f} bytes each (subtracted)")
    print(f"    per ready message, beyond payload:     {per_ready:.0f} bytes")
    print(
        f"    per in-flight lease, beyond payload:   {per_lease:.0f} bytes "
        f"(target < {TARGET_BYTES_PER_LEASE}: {verdict})"
    )
    return per_lease


def main(argv: list[str] | None = None) -> int:
    """Run all three measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--size", type=int, default=100, help="payload bytes")
    parser.add_argument(
        "--only", choices=["throughput", "expiry", "memory"], help="run one measurement"
    )
    args = parser.parse_args(argv)
    if args.quick:
        n, repeats, total, k, rounds, mem_n = 20_000, 1, 20_000, 1_000, 3, 20_000
    else:
        n, repeats, total, k, rounds, mem_n = 200_000, 9, 1_000_000, 1_000, 20, 1_000_000
    print(f"Python {sys.version.split()[0]}{' (quick)' if args.quick else ''}")
    if args.only in (None, "throughput"):
        bench_throughput(n, args.size, repeats)
    if args.only in (None, "expiry"):
        bench_expiry(total, k, rounds)
    if args.only in (None, "memory"):
        bench_memory(mem_n, args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
