"""Same workload, every system, one run: where ccdash stands against its yardsticks.

    python benchmarks/compare.py [--messages 20000] [--no-redis] [--no-instructions]
                                 [--redis-instructions-only]

Each system handles the same N messages `{"id": i, "body": "x"*100}` with 8
consumers and a trivial async handler; exactly-once is checked after every run.
The messages are published first (consumption paused), then consumption is timed
until the last ack, so "consume msg/s" compares like with like; "publish msg/s"
is the preload. Systems:

  floor         a bare asyncio.Queue (no lease at all)
  mini-lease    a minimal lease queue written here: a ready deque, a lease dict in
                deadline order, a receipt per delivery, parked getters
  memory p1/p32 ccdash's engine on its memory broker, prefetch 1 and 32
  sqlite p32    ccdash on a SQLite file (publish_many x1000)
  redis p32     ccdash on a private redis-server without persistence
  raw-xack1     Redis Streams: XREADGROUP COUNT 32, one XACK per message
  raw-xackN     Redis Streams: XREADGROUP COUNT 32, one XACK per batch

Ratios are within this run (wall clock on a shared machine swings between runs).
With valgrind present, the in-process systems are also counted in CPU
instructions per message (whole path, publish + consume), which repeats within
about 1%, and so is redis-server itself for "redis p32" and "raw-xackN" (a
server under callgrind per run; the cost of Redis per message whatever else
loads the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    check_once,
    cpu_seconds,
    has_valgrind,
    per_message,
    redis_server,
    workload,
)

from ccdash import Engine, EngineConfig

CONSUMERS = 8
Timed = tuple[float, float]  # (publish seconds, consume seconds)


# -- in process ---------------------------------------------------------------


async def run_floor(n: int) -> Timed:
    """asyncio.Queue: put everything, then time get -> handle -> task_done."""
    msgs, counts = workload(n), [0] * n
    q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def handle(body: dict[str, Any]) -> None:
        counts[body["id"]] += 1

    async def consume() -> None:
        while True:
            body = await q.get()
            await handle(body)
            q.task_done()

    t0 = time.perf_counter()
    for m in msgs:
        await q.put(m)
    t1 = time.perf_counter()
    tasks = [asyncio.create_task(consume()) for _ in range(CONSUMERS)]
    await q.join()
    t2 = time.perf_counter()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    check_once(counts, "floor")
    return t1 - t0, t2 - t1


class MiniLeaseQueue:
    """The least a leased queue must do: ready FIFO, leases by receipt in deadline
    order (one visibility timeout, so insertion order is deadline order), a fresh
    receipt per delivery, stale receipts rejected, getters parked on futures."""

    def __init__(self, vt: float = 30.0) -> None:
        self.ready: deque[Any] = deque()
        self.leases: dict[int, tuple[Any, float]] = {}
        self.receipt = 0
        self.vt = vt
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.now = time.monotonic

    def put(self, body: Any) -> None:
        self.ready.append(body)
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(None)
                break

    async def get(self) -> tuple[int, Any]:
        while not self.ready:
            w = asyncio.get_running_loop().create_future()
            self.waiters.append(w)
            await w
        body = self.ready.popleft()
        self.receipt += 1
        self.leases[self.receipt] = (body, self.now() + self.vt)
        return self.receipt, body

    def ack(self, receipt: int) -> None:
        if self.leases.pop(receipt, None) is None:
            raise KeyError(f"receipt {receipt} is not a live lease")

    def outstanding(self) -> int:
        return len(self.ready) + len(self.leases)


async def run_mini(n: int) -> Timed:
    """The minimal lease queue, with the same 8 consumers and handler."""
    msgs, counts = workload(n), [0] * n
    q = MiniLeaseQueue()
    done = asyncio.get_running_loop().create_future()

    async def handle(body: dict[str, Any]) -> None:
        counts[body["id"]] += 1

    async def consume() -> None:
        while True:
            receipt, body = await q.get()
            await handle(body)
            q.ack(receipt)
            if not q.outstanding() and not done.done():
                done.set_result(None)

    t0 = time.perf_counter()
    for m in msgs:
        q.put(m)
    t1 = time.perf_counter()
    tasks = [asyncio.create_task(consume()) for _ in range(CONSUMERS)]
    await done
    t2 = time.perf_counter()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    check_once(counts, "mini-lease")
    return t1 - t0, t2 - t1


async def run_engine(n: int, prefetch: int, broker: str = "memory", batch: int = 1) -> Timed:
    """ccdash: paused while publishing (one at a time, or publish_many x batch)."""
    msgs, counts = workload(n), [0] * n

    async def handle(d: Any) -> None:
        counts[d.body["id"]] += 1

    cfg = EngineConfig(consumers=CONSUMERS, prefetch=prefetch, visibility_timeout=60.0)
    async with Engine(cfg, handler=handle, broker=broker) as engine:
        await engine.pause()
        t0 = time.perf_counter()
        if batch > 1:
            for i in range(0, n, batch):
                await engine.publish_many(msgs[i : i + batch])
        else:
            for m in msgs:
                await engine.publish(m)
        t1 = time.perf_counter()
        await engine.resume()
        await engine.join(timeout=600)
        t2 = time.perf_counter()
    check_once(counts, f"ccdash {broker} prefetch {prefetch}")
    return t1 - t0, t2 - t1


# -- raw Redis Streams --------------------------------------------------------


async def run_raw_redis(n: int, url: str, batched_ack: bool) -> Timed:
    """XADD (pipelined x1000), then 8 consumers: XREADGROUP COUNT 32, handle,
    XACK per message or per batch."""
    import redis.asyncio as aioredis

    msgs, counts = workload(n), [0] * n
    client = aioredis.Redis.from_url(url, max_connections=CONSUMERS + 2)
    key, group = f"raw:{time.monotonic_ns()}", "g"
    await client.xgroup_create(key, group, id="0", mkstream=True)
    t0 = time.perf_counter()
    for i in range(0, n, 1000):
        async with client.pipeline(transaction=False) as pipe:
            for m in msgs[i : i + 1000]:
                pipe.xadd(key, {"d": json.dumps(m, separators=(",", ":"))})
            await pipe.execute()
    t1 = time.perf_counter()
    left = [n]

    async def handle(body: dict[str, Any]) -> None:
        counts[body["id"]] += 1

    async def consume(name: str) -> None:
        while left[0] > 0:
            reply = await client.xreadgroup(group, name, {key: ">"}, count=32)
            if not reply or not reply[0][1]:
                return  # preloaded: the rest is with the other consumers
            entries = reply[0][1]
            for eid, fields in entries:
                await handle(json.loads(fields[b"d"]))
                if not batched_ack:
                    await client.xack(key, group, eid)
            if batched_ack:
                await client.xack(key, group, *[eid for eid, _ in entries])
            left[0] -= len(entries)

    await asyncio.gather(*[consume(f"c{i}") for i in range(CONSUMERS)])
    t2 = time.perf_counter()
    await client.delete(key)
    await client.aclose()
    check_once(counts, "raw redis")
    return t1 - t0, t2 - t1


# -- the table ----------------------------------------------------------------

IN_PROCESS: dict[str, Callable[[int], Awaitable[Timed]]] = {
    "floor": run_floor,
    "mini-lease": run_mini,
    "memory p1": lambda n: run_engine(n, 1),
    "memory p32": lambda n: run_engine(n, 32),
}


REDIS_COUNTED: dict[str, Callable[[int, str], Awaitable[Timed]]] = {
    "redis p32": lambda n, url: run_engine(n, 32, url, 1000),
    "raw-xackN": lambda n, url: run_raw_redis(n, url, True),
}


def redis_instructions(name: str, base: int, extra: int) -> float | None:
    """redis-server instructions per message of one Redis system (publish + consume):
    a run of base+extra messages minus a run of base, each on its own server under
    callgrind. None without redis-server."""
    counts: list[int] = []
    for n in (base + extra, base):
        with redis_server(counted=counts) as server:
            if server is None:
                return None
            asyncio.run(REDIS_COUNTED[name](n, server[0]))
    return (counts[0] - counts[1]) / extra


def print_redis_instructions(base: int, extra: int) -> None:
    """The redis-server instruction counts of ccdash and the raw loop, and their ratio."""
    counted = {name: redis_instructions(name, base, extra) for name in REDIS_COUNTED}
    ours, raw = counted["redis p32"], counted["raw-xackN"]
    if ours is None or raw is None:
        print("(no redis-server: its instructions not counted)")
        return
    print(
        f"redis-server instructions per message (callgrind, publish + consume, +{extra:,} "
        f"messages over a {base:,} base):"
    )
    print(f"{'redis p32':<12} {ours:>9,.0f}  x raw-xackN {ours / raw:.2f}")
    print(f"{'raw-xackN':<12} {raw:>9,.0f}")


def count_instructions(name: str, messages: int) -> float:
    """Instructions per message of one in-process system (whole path)."""
    return per_message([__file__, "--side", name, "--messages"], 2000, messages)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument(
        "--instr-messages",
        type=int,
        default=10_000,
        help="extra messages of the instruction-count runs",
    )
    p.add_argument("--no-redis", action="store_true")
    p.add_argument("--no-sqlite", action="store_true")
    p.add_argument("--no-instructions", action="store_true")
    p.add_argument(
        "--redis-instructions-only",
        action="store_true",
        help="only count redis-server's instructions per message (ccdash and the raw loop)",
    )
    p.add_argument(
        "--redis-instr-messages",
        type=int,
        default=4000,
        help="extra messages of the redis-server instruction-count runs",
    )
    p.add_argument("--rounds", type=int, default=2, help="runs per system; the best counts")
    p.add_argument("--side", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side:  # a child counted by callgrind
        asyncio.run(IN_PROCESS[args.side](args.messages))
        return 0
    n = args.messages
    if args.redis_instructions_only:
        if not has_valgrind():
            print("(no valgrind: nothing counted)")
            return 0
        print_redis_instructions(2000, args.redis_instr_messages)
        return 0
    rows: list[tuple[str, Timed, float | None]] = []  # name, times, redis-server cpu/msg

    def best(runs: list[Timed]) -> Timed:
        return min(r[0] for r in runs), min(r[1] for r in runs)

    for name, fn in IN_PROCESS.items():
        rows.append((name, best([asyncio.run(fn(n)) for _ in range(args.rounds)]), None))
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as d:
            runs = [
                asyncio.run(run_engine(n, 32, f"sqlite:///{d}/b{i}.db", 1000))
                for i in range(args.rounds)
            ]
        rows.append(("sqlite p32", best(runs), None))
    if not args.no_redis:
        with redis_server() as server:
            if server is None:
                print("(no redis-server: Redis rows skipped)")
            else:
                url, pid = server
                for name, make in (
                    ("redis p32", lambda: run_engine(n, 32, url, 1000)),
                    ("raw-xack1", lambda: run_raw_redis(n, url, False)),
                    ("raw-xackN", lambda: run_raw_redis(n, url, True)),
                ):
                    runs, cpu = [], []
                    for _ in range(args.rounds):
                        c0 = cpu_seconds(pid)
                        runs.append(asyncio.run(make()))
                        cpu.append(cpu_seconds(pid) - c0)
                    rows.append((name, best(runs), min(cpu) / n * 1e6))
    floor_consume = n / rows[0][1][1]
    print(
        f"same workload: {n:,} messages {{id, body: 100 x}}, {CONSUMERS} consumers, "
        "exactly-once checked; best of",
        args.rounds,
    )
    print(f"{'system':<12} {'publish/s':>11} {'consume/s':>11} {'x floor':>8} {'redis µs/msg':>13}")
    for name, (tp, tc), cpu in rows:
        rs = f"{cpu:13.1f}" if cpu is not None else f"{'':>13}"
        print(f"{name:<12} {n / tp:>11,.0f} {n / tc:>11,.0f} {n / tc / floor_consume:>8.3f} {rs}")
    if not args.no_instructions and has_valgrind():
        print(
            f"instructions per message (callgrind, whole path, +{args.instr_messages:,} "
            "messages over a 2,000 base):"
        )
        counted = {name: count_instructions(name, args.instr_messages) for name in IN_PROCESS}
        mini = counted["mini-lease"]
        for name, v in counted.items():
            print(f"{name:<12} {v:>9,.0f}  x mini-lease {v / mini:.2f}")
        if not args.no_redis:
            print_redis_instructions(2000, args.redis_instr_messages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
