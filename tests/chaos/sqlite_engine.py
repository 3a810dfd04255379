"""A small engine program on a SQLite file, for the chaos suite:

    python -m chaos.sqlite_engine DB PUBLISHED [--publish N] [--rate R] [--start S]
        [--consumers C] [--handler NAME] [--drain]

It consumes with a chaos handler and, with --publish, publishes bodies
{"n": S..S+N-1} (about R per second; 0: as fast as it can), appending `id n` to
PUBLISHED once `publish` has returned (accepted: it is in the file). Without
--drain it runs until SIGTERM/SIGINT; with --drain it exits 0 once it has
published and the file holds nothing ready, delayed or leased (3 if that takes
over a minute). SIGUSR1 ends the publishing early.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time

from ccdash import Engine, EngineConfig
from chaos import handlers

DRAIN_LIMIT_S = 60.0


async def _publish(
    engine: Engine, path: str, n: int, rate: float, start: int, enough: asyncio.Event
) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    t0 = time.monotonic()
    for k, i in enumerate(range(start, start + n)):
        if enough.is_set():  # between publishes: an accepted one is always recorded
            break
        mid = await engine.publish({"n": i})
        os.write(fd, f"{mid} {i}\n".encode())
        if rate > 0:
            ahead = t0 + (k + 1) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
    os.close(fd)


def _empty(engine: Engine) -> bool:
    q = engine.snapshot().queue
    return q.depth == 0 and q.in_flight == 0 and getattr(q, "delayed", 0) == 0


async def main(args: argparse.Namespace) -> int:
    """Run until stopped (or drained); the exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # --consumers 0: a publish-only engine (a producer process on the shared file).
    cfg = EngineConfig(
        consumers=args.consumers,
        min_consumers=min(1, args.consumers),
        prefetch=2,
        visibility_timeout=30.0,
        heartbeat_interval=0.5,
        heartbeat_timeout=2.0,
        max_attempts=5,
        shutdown_grace=2.0,
        backoff_base=0.05,
        backoff_max=0.5,
    )
    handler = getattr(handlers, args.handler) if args.consumers else None
    code = 0
    async with Engine(cfg, handler=handler, broker=f"sqlite:///{args.db}") as engine:
        enough = asyncio.Event()  # SIGUSR1: publish no more (then drain, with --drain)
        loop.add_signal_handler(signal.SIGUSR1, enough.set)
        publishing = asyncio.ensure_future(
            _publish(engine, args.published, args.publish, args.rate, args.start, enough)
        )
        if args.drain:
            await asyncio.gather(publishing, return_exceptions=True)
            deadline = time.monotonic() + DRAIN_LIMIT_S
            while not _empty(engine) and not stop.is_set():
                if time.monotonic() > deadline:
                    code = 3
                    break
                await asyncio.sleep(0.05)
        else:
            await stop.wait()
            enough.set()
            await publishing
    print("finished", flush=True)
    return code


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The program's arguments."""
    p = argparse.ArgumentParser(prog="chaos.sqlite_engine")
    p.add_argument("db")
    p.add_argument("published")
    p.add_argument("--publish", type=int, default=0)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--consumers", type=int, default=4)
    p.add_argument("--handler", default="record")
    p.add_argument("--drain", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse())))
