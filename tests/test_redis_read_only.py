"""The Redis broker when Redis refuses writes (a read-only replica: READONLY), on a
real redis-server of the test's own made a replica of a port nobody serves (it keeps
its data and refuses every write until `REPLICAOF NO ONE`). A nack, defer or release
refused is no crash: Redis stored nothing, so the lease stays with Redis and the
message comes back once its visibility timeout has passed; the refusal is logged.

(Out of memory does not refuse them: the end script's first write, XACK, needs no
memory, and Redis lets a script that has written go on.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.polling import until
from support.redis_fixtures import RedisServer, free_port, lease_many

from ccdash import Delivery, Engine, EngineConfig
from ccdash.brokers.base import QueueConfig
from ccdash.brokers.redis import RedisBroker

pytestmark = [pytest.mark.slow]


@pytest.fixture
def replica(redis_server_factory: Callable[[], RedisServer]) -> Iterator[Any]:
    """A private server and `read_only(bool)`: make it a replica (of nobody) or not."""
    server = redis_server_factory()
    nobody = str(free_port())

    def read_only(on: bool) -> None:
        args = ("127.0.0.1", nobody) if on else ("NO", "ONE")
        assert server.command("REPLICAOF", *args) == b"+OK\r\n"

    try:
        yield server, read_only
    finally:
        read_only(False)


async def test_a_nack_defer_or_release_redis_refuses_keeps_the_message(
    replica: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Read-only Redis: nack, defer and release each return (no ReadOnlyError at the
    caller); the refusal is logged naming the read-only replica; once writes go through again all
    three messages come back after their visibility timeout, none lost."""
    server, read_only = replica
    url = f"{server.url}?queue=ro&ttl=0.4"
    broker = RedisBroker.from_url(url, QueueConfig(visibility_timeout=1.0, seed=1))
    await broker.open()
    try:
        mids = {await broker.publish({"n": i}) for i in range(3)}
        a, b, c = await lease_many(broker, 3)
        read_only(True)
        assert await broker.nack(a.receipt, "boom", delay=0.0) is False
        await broker.defer(b.receipt, 0.0)
        assert await broker.release([c.receipt], "consumer-failed", "gone") == 1
        said = [r.getMessage() for r in caplog.records]
        refusals = [m for m in said if "lease end" in m and "refused by Redis" in m]
        assert refusals and "read only replica" in refusals[0], caplog.text
        assert len(refusals) == 1  # once per spell of refusals
        read_only(False)
        again = await lease_many(broker, 3, within=5)
        assert {d.message_id for d in again} == mids
    finally:
        await broker.close()


async def test_a_refused_nack_does_not_crash_the_consumer(replica: Any) -> None:
    """An engine on read-only Redis: the handler's failure cannot be nacked; its
    consumer goes on (no consumer-failed, no replacement), and the message is handled
    once Redis takes writes again."""
    server, read_only = replica
    done: list[int] = []

    async def handler(d: Delivery) -> None:
        if d.attempt == 1:
            read_only(True)  # the nack of this failure is refused
            raise RuntimeError("first try fails")
        done.append(d.attempt)

    cfg = EngineConfig(
        consumers=1, visibility_timeout=1.0, heartbeat_interval=0.1, heartbeat_timeout=0.5, seed=3
    )
    async with Engine(cfg, handler=handler, broker=f"{server.url}?queue=roe&ttl=0.4") as engine:
        await engine.publish({"n": 1})
        await until(lambda: engine.snapshot().consumers[0].failed == 1, 5, "the failure")
        read_only(False)
        await engine.join(timeout=5)
        kinds = [e.kind for e in engine.events]
        assert done == [2]
        assert "consumer-failed" not in kinds, [e.message for e in engine.events]
