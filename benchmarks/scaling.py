"""How ccdash's costs grow with the pool, the leases held and the backlog.

    python benchmarks/scaling.py [--quick] [--only consumers,leases,redis-leases,backlog]

Each figure should stay flat as its scale grows (per message, per tick); the
ratio column compares with the smallest scale of the same table, in this run.

  consumers  1/8/64/512 idle consumers (memory, prefetch 1): µs to publish one
             message into the pool and see it acked; ms of one health tick
  leases     1k/10k/100k leases held (memory, fake clock): ms of a health tick with
             nothing to extend, and of the tick that extends them all
  redis-leases  1k/10k(/100k with --big) leases held on a private redis-server,
             visibility 4 s: seconds to extend them all, and how many were lost
             (their extension refused) while live consumers held them; then the
             same under load: another worker process on the same queue publishes
             and consumes --traffic msg/s (default 5,000) meanwhile
  (Redis)    redis-server CPU per message while the worker holds 0 / 20k other leases
  backlog    10k/100k/1M messages queued (memory): publish and consume msg/s

Every run is bounded (the largest sizes take seconds, not minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import cpu_seconds, redis_server

import ccdash
from ccdash import Engine, EngineConfig
from ccdash.clock import FakeClock


async def noop(_: Any) -> None:
    return None


def _table(title: str, head: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    print(title)
    print("  ".join(f"{h:>14}" for h in head))
    for r in rows:
        print("  ".join(f"{v:>14,.3f}" if isinstance(v, float) else f"{v:>14,}" for v in r))


# -- consumers ----------------------------------------------------------------


async def idle_pool(consumers: int, messages: int, ticks: int) -> tuple[float, float, float]:
    """(µs per message into an idle pool, median ms per health tick, max ms)."""
    cfg = EngineConfig(
        consumers=consumers,
        max_consumers=max(64, consumers),
        prefetch=1,
        heartbeat_interval=100.0,
        heartbeat_timeout=200.0,
        visibility_timeout=300.0,
    )
    async with Engine(cfg, handler=noop) as engine:
        for _ in range(3):
            await asyncio.sleep(0)
        for _ in range(consumers * 4):  # every consumer has latencies to merge
            await engine.publish(b"x")
        await engine.join(timeout=60)
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(messages):
            await engine.publish(b"x")
            await engine.join(timeout=60)
        per_msg = (time.perf_counter() - t0) / messages * 1e6
        tick_ms = []
        for _ in range(ticks):
            t = time.perf_counter()
            await engine.health.tick()
            tick_ms.append((time.perf_counter() - t) * 1e3)
        await engine.stop(grace=0)
    return per_msg, statistics.median(tick_ms), max(tick_ms)


async def bench_consumers(sizes: list[int], messages: int) -> None:
    rows = []
    for n in sizes:
        rows.append((n, *(await idle_pool(n, messages, 20))))
    base = rows[0][1]
    _table(
        f"consumers: one message into an idle pool ({messages:,} in turn), health tick",
        ("consumers", "µs/message", "x smallest", "tick ms (med)", "tick ms (max)"),
        [(n, us, us / base, med, mx) for n, us, med, mx in rows],
    )


# -- leases held, memory ------------------------------------------------------


async def held_leases(leases: int) -> tuple[float, float, float, int]:
    """(ms of a tick with nothing to extend, ms of the tick that extends all, the
    longest ms the event loop was stalled during it, leases held and extended)."""
    clock = FakeClock()
    consumers = max(1, min(100, leases // 100))
    stall = asyncio.Event()

    async def hold(_: Any) -> None:
        await stall.wait()

    cfg = EngineConfig(
        consumers=consumers,
        max_consumers=max(64, consumers),
        prefetch=leases // consumers,
        heartbeat_interval=1000.0,
        heartbeat_timeout=2000.0,
        visibility_timeout=4000.0,
    )
    engine = Engine(cfg, handler=hold, clock=clock)
    await engine.start()
    await engine.publish_many([b"x"] * leases)
    last, same = -1, 0
    while same < 50:  # until the dispatcher has handed out all it will
        held = engine.broker.stats().in_flight
        same = same + 1 if held == last else 0
        last = held
        await asyncio.sleep(0)
    held = engine.broker.stats().in_flight
    gc.collect()
    t = time.perf_counter()
    await engine.health.tick()
    quiet = (time.perf_counter() - t) * 1e3
    before = [li.deadline for li in engine.broker.leases(1)]
    await clock.advance(2001.0)  # every lease is now within half a visibility timeout
    engine.health.stop()  # only the tick below runs
    ticking, stall = True, [0.0]

    async def watch() -> None:  # the longest the loop went without running this task
        last = time.perf_counter()
        while ticking:
            await asyncio.sleep(0)
            now = time.perf_counter()
            stall[0] = max(stall[0], now - last)
            last = now

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    stall[0] = 0.0
    t = time.perf_counter()
    await engine.health.tick()
    due = (time.perf_counter() - t) * 1e3
    ticking = False
    await watcher
    after = engine.broker.leases(1)
    extended = held if after and before and after[0].deadline > before[0] else 0
    await engine.stop(grace=0)
    return quiet, due, stall[0] * 1e3, extended


async def bench_leases(sizes: list[int]) -> None:
    rows = []
    for n in sizes:
        rows.append((n, *(await held_leases(n))))
    _table(
        "leases held (memory): health tick with nothing due, and extending all",
        ("leases", "quiet tick ms", "extend tick ms", "longest stall ms", "held+extended"),
        rows,
    )


# -- leases held, Redis -------------------------------------------------------


async def traffic_worker(url: str, rate: float) -> None:
    """Another worker of the queue (its own process): publishes `rate` msg/s in
    batches every 10 ms and consumes them (8 consumers, prefetch 32) until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    cfg = EngineConfig(consumers=8, prefetch=32, visibility_timeout=4.0)
    async with Engine(cfg, handler=noop, broker=url) as engine:
        t0, sent = time.monotonic(), 0
        while not stop.is_set():
            due = int((time.monotonic() - t0) * rate)
            if due > sent:
                n = min(due - sent, 1000)
                await engine.publish_many([{"traffic": True}] * n)
                sent += n
            await asyncio.sleep(0.01)
        await engine.stop(grace=0)


def start_traffic(url: str, rate: float) -> subprocess.Popen[bytes]:
    """`traffic_worker` in a process of its own."""
    return subprocess.Popen(
        [sys.executable, __file__, "--traffic-worker", url, "--traffic", str(rate)]
    )


async def redis_held(
    url: str, pid: int, leases: int, run: int, hold_for: float, traffic: float = 0.0
) -> tuple[float, float, float, int, int, int, int, float]:
    """Hold `leases` leases on Redis for `hold_for` seconds under the engine's own health
    loop (visibility 4 s, heartbeat 1 s), with another worker publishing and consuming
    `traffic` msg/s on the same queue meanwhile (0: none): (longest tick s, its CPU s
    in this process and in redis-server, leases it extended, the most leases any tick
    extended, leases held, leases lost: an extension refused, or a lease expired, while
    a live consumer held it; the other worker's msg/s acked while they were held)."""
    consumers = max(1, min(100, leases // 100))
    stall = asyncio.Event()

    async def hold(_: Any) -> None:
        await stall.wait()

    cfg = EngineConfig(
        consumers=consumers,
        max_consumers=max(64, consumers),
        prefetch=leases // consumers,
        heartbeat_interval=1.0,
        heartbeat_timeout=3.0,
        visibility_timeout=4.0,
    )
    queue = url.rstrip("/") + f"?queue=scale{run}"
    engine = Engine(cfg, handler=hold, broker=queue)
    lost = [0]

    def on_event(ev: Any) -> None:
        if ev.kind in ("lease-expired", "ack-rejected"):
            lost[0] += 1

    engine.add_listener(on_event)
    await engine.start()
    tick = engine.health.tick
    extend_many = engine.broker.extend_many
    # The longest tick: wall s, this process's CPU s, Redis CPU s, leases it extended;
    # and the most leases any tick extended.
    longest = [0.0, 0.0, 0.0, 0.0, 0.0]
    extended = [0]

    async def counted_extend(receipts: Any, seconds: float) -> list[float | None]:
        extended[0] += len(receipts)
        return await extend_many(receipts, seconds)

    async def timed_tick() -> None:
        extended[0] = 0
        t, c, r = time.perf_counter(), time.process_time(), cpu_seconds(pid)
        await tick()
        took = time.perf_counter() - t
        if took > longest[0]:
            longest[:4] = [took, time.process_time() - c, cpu_seconds(pid) - r, extended[0]]
        longest[4] = max(longest[4], extended[0])

    engine.broker.extend_many = counted_extend  # type: ignore[method-assign]
    engine.health.tick = timed_tick  # type: ignore[method-assign]

    def held_now() -> int:  # without listing them all (that would stall the loop)
        return sum(engine.broker.holder_counts().values())  # type: ignore[attr-defined]

    for i in range(0, leases, 1000):
        await engine.publish_many([b"x"] * min(1000, leases - i))
    deadline, last, same = time.monotonic() + 60, -1, 0
    while same < 20 and time.monotonic() < deadline:  # until handed out all it will
        n = held_now()
        same = same + 1 if n == last and n else 0
        last = n
        await asyncio.sleep(0.1)
    held = held_now()
    other = start_traffic(queue, traffic) if traffic else None
    try:
        if other is not None:  # until the other worker's acks show up
            a0 = engine.broker.stats().acked
            for _ in range(300):  # at most 30 s
                if engine.broker.stats().acked > a0:
                    break
                await asyncio.sleep(0.1)
        a0, t0 = engine.broker.stats().acked, time.monotonic()
        longest[:] = [0.0, 0.0, 0.0, 0.0, 0.0]  # from here on: the ticks that keep what is held
        await asyncio.sleep(hold_for)
        done = (engine.broker.stats().acked - a0) / (time.monotonic() - t0)
    finally:
        if other is not None:
            other.terminate()
            other.wait(timeout=30)
    # A lease refused or lost meanwhile left the book while its consumer still holds it.
    still = held_now()
    lost[0] = max(lost[0], held - still)
    await engine.stop(grace=0)
    took, cpu, rcpu, it, most = longest
    return (took, cpu, rcpu, int(it), int(most), held, lost[0], done)


async def ack_cost(url: str, pid: int, held: int, run: int) -> float:
    """redis-server CPU µs per message published, fetched and acked (5,000, in
    batches of 100) while the worker holds `held` other leases."""
    from ccdash.brokers.base import QueueConfig
    from ccdash.brokers.redis import RedisBroker

    fetch = min(10_000, held + 200)  # the URL allows at most 10,000
    broker = RedisBroker.from_url(
        url.rstrip("/") + f"?queue=ack{run}&fetch={fetch}", QueueConfig(visibility_timeout=300.0)
    )
    await broker.open()

    async def lease(n: int) -> list[Any]:
        for i in range(0, n, 1000):
            for _ in range(min(1000, n - i)):
                broker.publish_nowait(b"x")
            await broker.flush()
        got: list[Any] = []
        while len(got) < n:
            await broker.wait_ready()
            got += await broker.receive(["c"] * (n - len(got)))
        return got

    await lease(held)
    c0 = cpu_seconds(pid)
    for _ in range(50):
        for d in await lease(100):
            broker.ack_nowait(d.receipt)
        await broker.flush()
    used = cpu_seconds(pid) - c0
    await broker.close()
    return used / 5000 * 1e6


async def bench_redis_leases(url: str, pid: int, sizes: list[int], traffic: float) -> None:
    rows = []
    for i, n in enumerate(sizes):
        *row, _ = await redis_held(url, pid, n, i, 9.0)
        rows.append((n, *row))
    head = (
        "leases",
        "longest tick s",
        "its cpu s",
        "its redis s",
        "it extended",
        "most a tick",
        "held",
        "lost",
    )
    _table(
        "leases held 9 s (Redis, visibility 4 s, heartbeat 1 s): longest health tick "
        "(wall, CPU here and in redis-server, leases it extended), the most leases a "
        "tick extended, leases lost while held",
        head,
        rows,
    )
    if not traffic:
        return
    rows = []
    for i, n in enumerate(sizes):
        rows.append((n, *(await redis_held(url, pid, n, 100 + i, 9.0, traffic))))
    _table(
        f"leases held 9 s under load (another worker publishing and consuming "
        f"{traffic:,.0f} msg/s on the same queue): longest health tick, leases lost",
        (*head, "other acked/s"),
        rows,
    )


# -- backlog ------------------------------------------------------------------


async def backlog(n: int) -> tuple[float, float]:
    """(publish msg/s, consume msg/s) with n messages queued first (memory)."""
    body = "x" * 100
    cfg = EngineConfig(consumers=8, prefetch=32, visibility_timeout=300.0)
    async with Engine(cfg, handler=noop) as engine:
        await engine.pause()
        gc.collect()
        t0 = time.perf_counter()
        for i in range(n):
            await engine.publish({"id": i, "body": body})
        t1 = time.perf_counter()
        await engine.resume()
        await engine.join(timeout=600)
        t2 = time.perf_counter()
    return n / (t1 - t0), n / (t2 - t1)


async def bench_backlog(sizes: list[int]) -> None:
    rows = []
    for n in sizes:
        rows.append((n, *(await backlog(n))))
        gc.collect()
    _table(
        "backlog (memory, 8 consumers, prefetch 32): publish all, then consume all",
        ("backlog", "publish/s", "consume/s"),
        rows,
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--big", action="store_true", help="also 100k leases on Redis")
    p.add_argument("--redis-sizes", help="leases held on Redis, e.g. 100000 (overrides the sizes)")
    p.add_argument("--only", default="consumers,leases,redis-leases,backlog")
    p.add_argument(
        "--traffic",
        type=float,
        default=5000.0,
        help="msg/s of the other worker in the Redis leases run under load (0: skip it)",
    )
    p.add_argument("--traffic-worker", metavar="URL", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.traffic_worker:  # the other worker's process
        asyncio.run(traffic_worker(args.traffic_worker, args.traffic))
        return 0
    only = set(args.only.split(","))
    print(f"ccdash from {Path(ccdash.__file__).parent}")
    if "consumers" in only:
        sizes = [1, 8, 64] if args.quick else [1, 8, 64, 512]
        asyncio.run(bench_consumers(sizes, 200 if args.quick else 2000))
    if "leases" in only:
        asyncio.run(bench_leases([1000, 5000] if args.quick else [1000, 10_000, 100_000]))
    if "redis-leases" in only:
        with redis_server() as server:
            if server is None:
                print("(no redis-server: Redis leases skipped)")
            else:
                sizes = [500] if args.quick else [1000, 10_000] + ([100_000] if args.big else [])
                if args.redis_sizes:
                    sizes = [int(v) for v in args.redis_sizes.split(",")]
                traffic = 1000.0 if args.quick and args.traffic else args.traffic
                asyncio.run(bench_redis_leases(server[0], server[1], sizes, traffic))
                held = [0, 1000] if args.quick else [0, 20_000]
                costs = [
                    (h, asyncio.run(ack_cost(server[0], server[1], h, i)))
                    for i, h in enumerate(held)
                ]
                _table(
                    "Redis: redis-server CPU per message (publish, fetch, ack) while "
                    "holding other leases",
                    ("leases held", "µs/message"),
                    costs,
                )
    if "backlog" in only:
        sizes = [10_000] if args.quick else [10_000, 100_000, 1_000_000]
        asyncio.run(bench_backlog(sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
