"""A publisher process for a Redis queue: `python -m chaos.publisher URL OUT N RATE [START]`.

Publishes bodies {"n": START..START+N-1} at about RATE per second, in small
batches, and appends each `id n` line to OUT (one write per batch, O_APPEND) only once
Redis has stored it: OUT is what the broker accepted, the publisher's own record.
A publish that fails (Redis restarting) is tried again with the same body; the first
failure is printed to stderr (`publish failed: ...`), the count at the end.
SIGTERM ends it early (exit 0): a scenario publishes for as long as its faults last.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time

from ccdash.brokers.base import BrokerError, QueueConfig
from ccdash.brokers.redis import RedisBroker

BATCH = 10


REFUSED = [0]  # publishes that failed (each is tried again)


async def _publish(broker: RedisBroker, i: int) -> str:
    while True:
        try:
            return await broker.publish({"n": i})
        except BrokerError as exc:
            if not REFUSED[0]:
                print(f"publish failed: {exc}", file=sys.stderr, flush=True)
            REFUSED[0] += 1
            await asyncio.sleep(0.1)


async def main(url: str, out: str, n: int, rate: float, start: int) -> None:
    """Publish, record, exit 0."""
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    broker = RedisBroker.from_url(url, QueueConfig(), worker=f"publisher-{os.getpid()}")
    await broker.open()
    stop = asyncio.Event()  # SIGTERM: finish the batch in hand, record it, exit 0
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    t0 = time.monotonic()
    done = 0
    try:
        for first in range(start, start + n, BATCH):
            if stop.is_set():
                break
            numbers = range(first, min(first + BATCH, start + n))
            ids = await asyncio.gather(*(_publish(broker, i) for i in numbers))
            os.write(
                fd, "".join(f"{mid} {i}\n" for mid, i in zip(ids, numbers, strict=True)).encode()
            )
            done += len(ids)
            ahead = t0 + (first + BATCH - start) / rate - time.monotonic()
            if ahead > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), ahead)
    finally:
        await broker.close()
    print("published", done, "failed", REFUSED[0], flush=True)


if __name__ == "__main__":
    url, out, n, rate, *rest = sys.argv[1:]
    asyncio.run(main(url, out, int(n), float(rate), int(rest[0]) if rest else 0))
