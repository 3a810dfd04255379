"""The chaos checker's own reading of a Redis queue: what it counts as still held."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support.redis_fixtures import RedisServer, lease

from chaos.holdings import RedisQueue

pytestmark = pytest.mark.chaos


async def test_entries_acked_behind_a_retried_lease_are_not_held(
    redis_server: RedisServer, redis_broker: Callable[..., Any], redis_url: str
) -> None:
    """Entries acked behind an older lease stay in their stream (trimmed in bulk by a
    later ack); when that lease is retried and then acked through the returned stream,
    no later ack trims them: the checker counts them as acked, not queued or left
    in the stream, like the broker's acked counter does."""
    broker = await redis_broker(backoff_base=0.0, backoff_max=0.0)
    ids = [broker.publish_nowait(i) for i in range(3)]
    await broker.flush()
    first, *rest = [await lease(broker) for _ in ids]
    assert await broker.ack_many([d.receipt for d in rest]) == []  # kept behind `first`
    assert not await broker.nack(first.receipt, "once", delay=0.0)  # retried, not dead
    again = await lease(broker)
    assert again.message_id == first.message_id and again.attempt == 2
    await broker.ack(again.receipt)
    await broker.flush()
    q = RedisQueue(redis_server.port, redis_url.partition("queue=")[2])
    assert q.counters()["acked"] == 3
    assert q.queued() == set()
    assert q.entries() == 0
    assert not q.pending()
