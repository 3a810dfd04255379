"""Publish -> handler latency at a fixed rate: ccdash on Redis beside a raw Redis
Streams loop, on the same private redis-server, in the same run.

    python benchmarks/latency.py [--rate 1000] [--seconds 3] [--rounds 3] [--quick]

Both sides publish one message at a time on a fixed schedule (`--rate` msg/s, each
publish awaited, the schedule kept by absolute due times) and time each message from
just before its publish call to the start of its handler, in one process (one
clock). The first half second of each run is left out (connections, warm-up).

  ccdash  a consumer engine (`Engine(cfg, handler, broker=url)`, 8 consumers) and a
          publish-only engine (`consumers=0`), as a user would run them
  raw     XADD per message; 8 consumers on XREADGROUP COUNT 32 BLOCK, then one XACK
          per batch

The two alternate, `--rounds` times each; the table gives every run and the ratio
of the medians. Latency is sensitive to the machine's load: the load average is
printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sized
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import cpu_seconds, redis_server

from ccdash import Engine, EngineConfig

CONSUMERS = 8
WARMUP = 0.5  # seconds left out at the start of each run

Send = Callable[[int], Awaitable[None]]


async def paced(send: Send, rate: float, n: int) -> None:
    """Call send(i) for i < n at `rate` per second, each awaited, on absolute due times
    (a late one does not push the rest back)."""
    t0 = time.perf_counter()
    for i in range(n):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)


async def until_all(got: Sized, n: int, within: float) -> None:
    """Wait (bounded) until n messages were handled."""
    deadline = time.monotonic() + within
    while len(got) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(got)} of {n} messages handled in {within:.0f}s")
        await asyncio.sleep(0.01)


def kept(lat: list[tuple[int, float]], rate: float) -> list[float]:
    """Latencies past the warm-up, in ms."""
    skip = int(WARMUP * rate)
    return [v * 1e3 for i, v in lat if i >= skip]


async def run_ccdash(url: str, run: int, rate: float, n: int) -> list[float]:
    """ccdash: a consumer engine and a publish-only engine on one queue."""
    lat: list[tuple[int, float]] = []
    seen: list[float] = []

    async def handle(d: Any) -> None:
        t = time.perf_counter()
        body = d.body
        lat.append((body["i"], t - body["t"]))
        seen.append(t)

    queue = f"{url.rstrip('/')}?queue=lat{run}"
    consumer = Engine(EngineConfig(consumers=CONSUMERS), handler=handle, broker=queue)
    publisher = Engine(EngineConfig(consumers=0, min_consumers=0), broker=queue)
    async with consumer, publisher:
        await asyncio.sleep(0.2)  # the consumers are parked, the reader blocks in Redis

        async def send(i: int) -> None:
            await publisher.publish({"i": i, "t": time.perf_counter()})

        await paced(send, rate, n)
        await until_all(seen, n, 30.0)
    return kept(lat, rate)


async def run_raw(url: str, run: int, rate: float, n: int) -> list[float]:
    """Raw Redis Streams: XADD per message; consumers on XREADGROUP COUNT 32 BLOCK,
    handle, one XACK per batch."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, max_connections=CONSUMERS + 4)
    key, group = f"raw:{run}:{time.monotonic_ns()}", "g"
    await client.xgroup_create(key, group, id="0", mkstream=True)
    lat: list[tuple[int, float]] = []
    done = asyncio.Event()

    async def consume(name: str) -> None:
        while not done.is_set():
            reply = await client.xreadgroup(group, name, {key: ">"}, count=32, block=200)
            if not reply or not reply[0][1]:
                continue
            entries = reply[0][1]
            for _eid, fields in entries:
                t = time.perf_counter()
                body = json.loads(fields[b"d"])
                lat.append((body["i"], t - body["t"]))
            await client.xack(key, group, *[eid for eid, _ in entries])

    tasks = [asyncio.create_task(consume(f"c{i}")) for i in range(CONSUMERS)]
    await asyncio.sleep(0.2)

    async def send(i: int) -> None:
        body = {"i": i, "t": time.perf_counter()}
        await client.xadd(key, {"d": json.dumps(body, separators=(",", ":"))})

    await paced(send, rate, n)
    try:
        await until_all(lat, n, 30.0)
    finally:
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.delete(key)
        await client.aclose()
    return kept(lat, rate)


def quantiles(ms: list[float]) -> tuple[float, float, float]:
    """(p50, p95, p99) in ms."""
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return q[49], q[94], q[98]


SIDES: dict[str, Callable[[str, int, float, int], Awaitable[list[float]]]] = {
    "ccdash": run_ccdash,
    "raw": run_raw,
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=1000.0, help="messages per second")
    p.add_argument("--seconds", type=float, default=3.0, help="publishing time per run")
    p.add_argument("--rounds", type=int, default=3, help="runs of each side (alternated)")
    p.add_argument("--quick", action="store_true", help="one short round (a smoke run)")
    args = p.parse_args()
    if args.quick:
        args.seconds, args.rounds = 1.0, 1
    n = int(args.rate * args.seconds)
    with redis_server() as server:
        if server is None:
            print("(no redis-server: latency skipped)")
            return 0
        url, pid = server
        load0 = os.getloadavg()[0]
        results: dict[str, list[tuple[float, float, float]]] = {s: [] for s in SIDES}
        cpu: dict[str, list[float]] = {s: [] for s in SIDES}
        run = 0
        for _ in range(args.rounds):
            for side, fn in SIDES.items():
                c0 = cpu_seconds(pid)
                ms = asyncio.run(fn(url, run, args.rate, n))
                cpu[side].append((cpu_seconds(pid) - c0) / n * 1e6)
                results[side].append(quantiles(ms))
                run += 1
        load1 = os.getloadavg()[0]
    print(
        f"latency publish -> handler start at {args.rate:,.0f} msg/s, {args.seconds:g} s "
        f"per run, {CONSUMERS} consumers, one publish at a time (awaited); "
        f"load average {load0:.2f} -> {load1:.2f} on {os.cpu_count()} cpus"
    )
    print(f"{'side':<8} {'run':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'redis µs/msg':>13}")
    for side in SIDES:
        for k, (p50, p95, p99) in enumerate(results[side]):
            print(f"{side:<8} {k + 1:>4} {p50:>8.3f} {p95:>8.3f} {p99:>8.3f} {cpu[side][k]:>13.1f}")
    med = {s: [statistics.median(r[j] for r in results[s]) for j in range(3)] for s in SIDES}
    a, b = med["ccdash"], med["raw"]
    print(
        f"x raw (medians of runs): p50 {a[0] / b[0]:.2f}  p95 {a[1] / b[1]:.2f}  "
        f"p99 {a[2] / b[2]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
