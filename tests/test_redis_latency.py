"""What a message waits for on Redis between its publish and its handler: the round
trips on that path are counted (the timings themselves are in benchmarks/latency.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from support.polling import until

from ccdash import Engine, EngineConfig
from ccdash.brokers.redis.reader import BLOCK_MS
from ccdash.brokers.redis.scripts import SCRIPTS


def _count_reads(link: Any, seen: Counter[str]) -> None:
    """Count the reader link's commands by kind: `block` (XREADGROUP) or `fetch`."""
    execute = link.execute
    fetch = SCRIPTS["fetch"].sha

    async def counting(cmds: Any) -> Any:
        for cmd in cmds:
            if cmd[0] == "XREADGROUP":
                seen["block"] += 1
            elif cmd[0] == "EVALSHA" and cmd[1] == fetch:
                seen["fetch"] += 1
        return await execute(cmds)

    link.execute = counting


async def test_an_idle_consumer_gets_each_publish_from_its_parked_read_alone(
    redis_url: str,
) -> None:
    """Ten messages published one at a time to an idle engine each reach the handler
    through the read parked in Redis (XREADGROUP BLOCK) alone: no fetch script round
    trip per message, which went out before the handler could start."""
    handled: asyncio.Queue[Any] = asyncio.Queue()

    async def handle(d: Any) -> None:
        handled.put_nowait(d.body)

    cfg = EngineConfig(consumers=2, min_consumers=1)
    publisher = Engine(EngineConfig(consumers=0, min_consumers=0), broker=redis_url)
    async with Engine(cfg, handler=handle, broker=redis_url) as engine, publisher:
        reader = engine.broker.reader  # type: ignore[attr-defined]
        await publisher.publish(0)
        assert await asyncio.wait_for(handled.get(), 10) == 0
        seen: Counter[str] = Counter()
        _count_reads(reader.link, seen)
        t0 = time.monotonic()
        for i in range(1, 11):
            await until(lambda: reader._blocking, 10, "the reader parked in Redis")
            await publisher.publish(i)
            assert await asyncio.wait_for(handled.get(), 10) == i
        elapsed = time.monotonic() - t0
    assert seen["block"] >= 10
    # A fetch still runs every BLOCK_MS (it notices new priority levels), never per message.
    assert seen["fetch"] <= 1 + int(elapsed * 1000 / BLOCK_MS), (seen, elapsed)
