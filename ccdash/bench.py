"""`ccdash bench`: end-to-end publish -> handle -> ack throughput beside a floor.

The floor is measured in the same run: a bare asyncio.Queue with the same
number of consumer tasks doing get -> await the same no-op handler ->
task_done. Every engine feature stays on in the measured path (leases,
metrics, balancer, health monitor).

Its no-op handler acks whatever it receives, so it never runs on a queue in use:
on Redis it runs on a scratch queue of its own (removed afterwards), and a SQLite
file must not exist yet (it is removed afterwards too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ccdash import Engine, EngineConfig
from ccdash.aio import off_loop_threads_ended, stop_signals
from ccdash.brokers import redact_url
from ccdash.brokers.base import BrokerError
from ccdash.files import write_private
from ccdash.text import sanitize
from ccdash.validate import (
    UsageError,
    add_broker_flags,
    bounded,
    check_broker,
    check_distinct_files,
    check_output_path,
    guard,
    resolve_broker,
)

# Seconds a stopped bench waits for its SQLite opener's thread to end before removing
# the scratch file (that thread may still create it; an open takes milliseconds).
OPENER_PATIENCE = 5.0


async def noop(_: Any) -> None:
    """The handler both sides await."""
    return None


@dataclass
class BenchRow:
    """One measured configuration."""

    prefetch: int
    consumers: int
    messages: int
    floor_per_s: float
    engine_per_s: float

    @property
    def ratio(self) -> float:
        """Engine rate as a fraction of the floor."""
        return self.engine_per_s / self.floor_per_s if self.floor_per_s else 0.0


async def floor_rate(n: int, consumers: int) -> float:
    """Messages/s through a bare asyncio.Queue with `consumers` tasks."""
    q: asyncio.Queue[bytes] = asyncio.Queue()

    async def consume() -> None:
        while True:
            item = await q.get()
            await noop(item)
            q.task_done()

    tasks = [asyncio.create_task(consume()) for _ in range(consumers)]
    t0 = time.perf_counter()
    for _ in range(n):
        await q.put(b"x")
    await q.join()
    elapsed = time.perf_counter() - t0
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return n / elapsed


async def engine_rate(
    n: int, consumers: int, prefetch: int, broker_url: str = "memory", publish_batch: int = 1
) -> float:
    """Messages/s published, handled and acked through the engine. With publish_batch > 1
    the producer uses publish_many (one group commit / round trip per batch)."""
    cfg = EngineConfig(consumers=consumers, prefetch=prefetch, max_consumers=max(64, consumers))

    async with Engine(cfg, handler=noop, broker=broker_url) as engine:  # the floor's handler
        before = engine.snapshot().acked  # a shared or durable broker counts earlier runs too
        t0 = time.perf_counter()
        if publish_batch > 1:
            for start in range(0, n, publish_batch):
                await engine.publish_many([b"x"] * min(publish_batch, n - start))
        else:
            for _ in range(n):
                await engine.publish(b"x")
        await engine.join(timeout=600)
        elapsed = time.perf_counter() - t0
        snap = engine.snapshot()
    if snap.acked - before != n:
        raise RuntimeError(f"bench lost messages: acked {snap.acked - before} of {n}")
    return n / elapsed


async def run_bench(
    messages: int,
    consumers: int,
    prefetches: list[int],
    broker_url: str,
    rounds: int,
    publish_batch: int = 1,
) -> list[BenchRow]:
    """Measure floor and engine for each prefetch; best of `rounds`, interleaved."""
    rows = []
    for prefetch in prefetches:
        floors, engines = [], []
        for _ in range(rounds):
            floors.append(await floor_rate(messages, consumers))
            engines.append(
                await engine_rate(messages, consumers, prefetch, broker_url, publish_batch)
            )
        rows.append(BenchRow(prefetch, consumers, messages, max(floors), max(engines)))
    return rows


def _print(rows: list[BenchRow], broker_url: str, publish_batch: int) -> None:
    broker_url = sanitize(redact_url(broker_url), 200)  # a path may hold anything
    how = "one publish at a time" if publish_batch == 1 else f"publish_many x{publish_batch}"
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(f"ccdash bench ({broker_url} broker, no-op handler, {how})"))
        for col in ("prefetch", "consumers", "messages", "floor msg/s", "engine msg/s", "ratio"):
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(
                str(r.prefetch),
                str(r.consumers),
                f"{r.messages:,}",
                f"{r.floor_per_s:,.0f}",
                f"{r.engine_per_s:,.0f}",
                f"{r.ratio:.0%}",
            )
        Console().print(table)
        return
    print(f"ccdash bench: {broker_url} broker, no-op handler, {how}; floor = bare asyncio.Queue")
    for r in rows:
        print(
            f"prefetch={r.prefetch} consumers={r.consumers} messages={r.messages} "
            f"floor={r.floor_per_s:.0f}/s engine={r.engine_per_s:.0f}/s ratio={r.ratio:.2f}"
        )


def build_parser() -> argparse.ArgumentParser:
    """The `ccdash bench` arguments."""
    p = argparse.ArgumentParser(prog="ccdash bench", description=__doc__.splitlines()[0])
    add_broker_flags(p, "broker URL (default: memory)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument(
        "--messages",
        type=bounded(int, 1, 100_000_000),
        default=100_000,
        help="messages per run (1 to 100000000)",
    )
    p.add_argument(
        "--consumers",
        type=bounded(int, 1, 1000),
        default=4,
        help="consumer tasks on both sides (1 to 1000)",
    )
    p.add_argument(
        "--prefetch",
        type=bounded(int, 1, 10_000),
        action="append",
        help="prefetch to measure (repeatable; 1 to 10000; default 1 and 32)",
    )
    p.add_argument(
        "--rounds",
        type=bounded(int, 1, 100),
        default=3,
        help="runs per side; the best counts (1 to 100)",
    )
    p.add_argument(
        "--publish-batch",
        type=bounded(int, 1, 100_000),
        default=1,
        metavar="N",
        help="publish N messages per publish_many call (default 1: one at a time)",
    )
    return p


def scratch_url(url: str, scheme: str, source: str) -> str:
    """The URL the bench may fill and empty: a scratch queue of its own on Redis (never
    the queue the URL names); a SQLite file only if it does not exist yet."""
    if scheme == "sqlite":
        from ccdash.brokers.sqlite.schema import parse_url

        if os.path.lexists(parse_url(url).path):
            raise UsageError(
                f"{source}: {redact_url(url)} exists: the bench's no-op handler would ack "
                "the messages of a queue in use; give a file that does not exist yet "
                "(the bench removes it afterwards)"
            )
        return url
    if scheme not in ("redis", "rediss"):
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "queue"]
    query.append(("queue", f"ccdash-bench-{secrets.token_hex(4)}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def remove_scratch(url: str, scheme: str, *, answer_within: float = 5.0) -> None:
    """Delete what the bench left: the SQLite file, or the scratch queue's Redis keys
    (`answer_within`: seconds Redis has to answer)."""
    if scheme == "sqlite":
        remove_scratch_file(url)
    elif scheme in ("redis", "rediss"):
        from ccdash.fleet.connect import FleetConnectError, connect

        try:
            client, keys = await connect(url, socket_timeout=answer_within)
        except FleetConnectError as exc:
            raise BrokerError(f"removing the scratch queue: {exc}") from None
        from redis.exceptions import RedisError

        try:
            async for key in client.scan_iter(match=keys.prefix + "*", count=1000):
                await client.unlink(key)
        except (RedisError, OSError) as exc:
            raise BrokerError(f"removing the scratch queue: {type(exc).__name__}") from None
        finally:
            await client.aclose()


def remove_scratch_file(url: str) -> None:
    """Delete the bench's SQLite file and its -wal and -shm, those that exist."""
    from ccdash.brokers.sqlite.schema import parse_url

    path = parse_url(url).path
    for name in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


class Stopped(Exception):
    """SIGTERM or SIGHUP ended the bench (after its clean-up)."""

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig.name)
        self.sig = sig


async def _bench_then_clean(args: argparse.Namespace, scheme: str) -> list[BenchRow]:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    stopped: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:  # like Ctrl-C (asyncio.run's own): cancel,
        if not stopped and task is not None:  # clean up, leave; not killed with the file
            stopped.append(sig)
            task.cancel()

    for sig in stop_signals():
        if sig != signal.SIGINT:
            loop.add_signal_handler(sig, on_signal, sig)
    try:
        rows = await run_bench(
            args.messages,
            args.consumers,
            args.prefetch or [1, 32],
            args.broker,
            args.rounds,
            args.publish_batch,
        )
    except BaseException:
        # The bench's own error is the one to report: a clean-up that cannot reach
        # Redis either (it never answered) must not replace it with a traceback.
        with contextlib.suppress(BrokerError):  # briefly: it failed to answer just now
            await remove_scratch(args.broker, scheme, answer_within=1.0)
        if stopped:
            raise Stopped(stopped[0]) from None
        raise
    try:
        await remove_scratch(args.broker, scheme)
    except asyncio.CancelledError:  # the signal came as the bench ended
        if stopped:
            raise Stopped(stopped[0]) from None
        raise
    return rows


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    p = parser or build_parser()
    with guard():
        args = p.parse_args(argv)
        url, source = resolve_broker(args.broker, args.broker_file)
        assert url is not None
        try:
            scheme = check_broker(url, source)
            url = scratch_url(url, scheme, source)
            if args.json is not None:
                check_output_path("--json", args.json)
                check_distinct_files([("--broker-file", args.broker_file), ("--json", args.json)])
        except UsageError as exc:
            p.error(str(exc))
    args.broker = url
    try:
        try:
            with off_loop_threads_ended(within=OPENER_PATIENCE):
                rows = asyncio.run(_bench_then_clean(args, scheme))
        finally:  # once more now that the opener has ended: a signal that came while
            if scheme == "sqlite":  # it was creating the file cancelled the run, not
                remove_scratch_file(args.broker)  # the opener's thread
    except BrokerError as exc:
        p.error(f"{source}: {redact_url(args.broker)}: {exc}")
    except Stopped as exc:
        print(
            f"ccdash: bench stopped by {exc.sig.name}; its scratch queue removed", file=sys.stderr
        )
        return 128 + exc.sig
    except RuntimeError as exc:  # the engine's count did not add up: say so, no traceback
        print(f"ccdash: error: {sanitize(exc, 500)}", file=sys.stderr)
        return 1
    _print(rows, args.broker, args.publish_batch)
    if args.json:
        out = {
            "broker": redact_url(args.broker),
            "publish_batch": args.publish_batch,
            "rows": [{**asdict(r), "ratio": r.ratio} for r in rows],
        }
        try:
            write_private(args.json, json.dumps(out, indent=2) + "\n")
        except OSError as exc:
            print(
                f"ccdash: error: --json: cannot write {sanitize(args.json, 200)}: "
                f"{sanitize(exc.strerror or exc, 300)}",
                file=sys.stderr,
            )
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
