"""The Redis broker when Redis is out of memory (`maxmemory` with `noeviction`), on a
real redis-server: a publish its caller awaits fails with a BrokerError saying why
(nothing was stored: Redis refuses a script's first write, so none of the batch
is), instead of waiting for ever; consuming and acking go on; once memory is
raised, publishing works again and what was queued without a waiter is stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support.redis_fixtures import RedisServer, lease

from ccdash.brokers.base import BrokerError

Make = Callable[..., Any]


@pytest.fixture
async def out_of_memory(redis_server: RedisServer) -> AsyncIterator[Callable[[bool], None]]:
    """`set(True)`: the server refuses every write that needs memory; set back after."""

    def set_oom(on: bool) -> None:
        redis_server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        assert redis_server.command("CONFIG", "SET", "maxmemory", "1" if on else "0") == b"+OK\r\n"

    try:
        yield set_oom
    finally:
        set_oom(False)


async def test_publish_fails_loudly_when_redis_is_out_of_memory(
    redis_broker: Make, out_of_memory: Callable[[bool], None]
) -> None:
    """An awaited publish under OOM raises BrokerError naming maxmemory (not stored);
    a lease taken before is still acked; after memory is raised, publishing works and
    a publish queued without a waiter meanwhile is stored once."""
    broker = await redis_broker()
    await broker.publish({"n": 1})
    held = await lease(broker)
    out_of_memory(True)
    with pytest.raises(BrokerError, match="maxmemory"):
        await asyncio.wait_for(broker.publish({"n": 2}), 10)
    staged = broker.publish_nowait({"n": 3})
    await broker.ack(held.receipt)
    out_of_memory(False)
    await asyncio.wait_for(broker.publish({"n": 4}), 10)
    got = [await lease(broker, within=10) for _ in range(2)]
    assert sorted(d.body["n"] for d in got) == [3, 4]
    assert staged in {d.message_id for d in got}
    stats = broker.stats()
    assert stats.acked >= 1


async def test_a_heartbeat_redis_refuses_is_logged(
    redis_broker: Make, out_of_memory: Callable[[bool], None], caplog: pytest.LogCaptureFixture
) -> None:
    """A worker whose heartbeats Redis refuses (out of memory) says so, once, while
    its presence key runs out (peers and dashboards will see it gone), and says when
    they go through again."""
    from support.polling import until

    broker = await redis_broker(ttl=0.6, worker="hb")
    await broker.presence.register()
    out_of_memory(True)
    await until(lambda: "heartbeat refused by Redis" in caplog.text, 5, "the refusal logged")
    out_of_memory(False)
    await until(lambda: "heartbeats go through again" in caplog.text, 5, "the recovery logged")
    assert caplog.text.count("heartbeat refused by Redis") == 1
