"""The Redis broker keeps the queue contract when its keys are tampered with or its
publishes come in groups, on a real redis-server: every wait is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from support.redis_fixtures import RedisServer, lease

from ccdash import Engine, EngineConfig
from ccdash.brokers.base import BrokerError
from ccdash.brokers.redis import presence
from ccdash.brokers.redis.link import LinkDown, pack
from ccdash.brokers.redis.scripts import SCRIPTS
from ccdash.brokers.redis.scripts.delivery import MARK_KEEP, REGISTER_EVERY

Make = Callable[..., Any]


@pytest.mark.parametrize("cleanup", ["member", "key"])
async def test_a_level_dropped_from_the_registry_is_registered_again_by_a_publish(
    cleanup: str, redis_broker: Make, redis_server: RedisServer
) -> None:
    """An operator's cleanup (or a foreign client) takes priority 5 out of the level
    registry, or deletes the registry, while its streams stay: a publish to it (a
    second or more after this publisher last registered it) registers it again and the
    message is delivered. The group commit's publish script added to the existing
    stream without registering it, so nobody ever fetched it."""
    b = await redis_broker()
    clock = [0.0]  # the flusher's: when a publisher last registered its levels
    b.flusher.now = lambda: clock[0]
    await b.publish(b"m1", priority=5)
    d = await lease(b)
    await b.ack(d.receipt)
    if cleanup == "member":
        redis_server.command("ZREM", b.keys.priorities, "5")
    else:
        redis_server.command("DEL", b.keys.priorities)
    clock[0] += REGISTER_EVERY  # this publisher registered level 5 a while ago
    await b.publish(b"m2", priority=5)
    d = await lease(b, within=5.0)
    assert (d.body, d.priority) == (b"m2", 5)


@pytest.mark.parametrize("cleanup", ["member", "key"])
async def test_a_level_dropped_from_the_registry_is_found_again_without_a_publish(
    cleanup: str, redis_broker: Make, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message waits in priority 5's stream when the level leaves the registry (an
    operator's cleanup, a foreign client, eviction): the workers' periodic rediscovery
    (shortened here) registers it again and the message is delivered, with no further
    publish. Nobody read it until the next publish to that level: never, if none came."""
    monkeypatch.setattr(presence, "REDISCOVER_EVERY", 0.3)
    b = await redis_broker()
    await b.publish(b"m1", priority=5)  # nobody reads yet: the reader runs on demand
    if cleanup == "member":
        redis_server.command("ZREM", b.keys.priorities, "5")
    else:
        redis_server.command("DEL", b.keys.priorities)
    d = await lease(b, within=10.0)
    assert (d.body, d.priority) == (b"m1", 5)


async def test_publish_many_to_a_level_that_is_no_stream_raises_like_publish(
    redis_broker: Make, redis_server: RedisServer
) -> None:
    """A priority level's key holds a string (a foreign writer's): `publish` raises
    BrokerError for it, and so does `publish_many` (through the engine too), once the
    messages it could store are stored. It returned their ids as if stored: the
    messages were silently lost."""
    b = await redis_broker()
    redis_server.command("SET", b.keys.stream(3), "foreign")
    cfg = EngineConfig(consumers=0, min_consumers=0)
    async with Engine(cfg, handler=None, broker=b) as engine:
        async with asyncio.timeout(5.0):
            with pytest.raises(BrokerError, match="priority 3"):
                await engine.publish_many([b"a", b"b"], priority=3)
            with pytest.raises(BrokerError, match="priority 3"):
                await b.publish_many([b"c"], priority=3)
            assert len(await engine.publish_many([b"d", b"e"], priority=1)) == 2
        await b.refresh()
        assert b.stats().ready == 2


async def test_publish_many_waits_once_a_batch_not_once_a_message(
    redis_broker: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting for 3,000 publishes to be stored costs the loop a few callbacks a batch
    of 1,000, not one or two per message (a gather over every publish's future, and a
    done callback added to each after): counted as the loop's call_soon calls."""
    b = await redis_broker()
    await b.publish_many([{"n": i} for i in range(10)])  # warm: scripts loaded
    loop = asyncio.get_running_loop()
    calls = 0
    call_soon = loop.call_soon

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return call_soon(*args, **kwargs)

    monkeypatch.setattr(loop, "call_soon", counting)
    ids = await b.publish_many([{"n": i} for i in range(3000)])
    monkeypatch.undo()
    assert len(set(ids)) == 3000
    assert calls < 300, f"{calls} loop callbacks for 3,000 publishes"


async def test_the_broker_refuses_a_priority_it_has_no_level_for(redis_broker: Make) -> None:
    """Redis keeps a level per priority from -1000 to 1000 (others are dropped from its
    registry, and their messages never fetched): every publish path refuses them, as
    the engine does, naming the range."""
    b = await redis_broker()
    with pytest.raises(ValueError, match="from -1000 to 1000, got 5000"):
        await b.publish(b"x", priority=5000)
    with pytest.raises(ValueError, match="from -1000 to 1000, got -1001"):
        b.publish_nowait(b"x", priority=-1001)
    with pytest.raises(ValueError, match="got 1001"):
        await b.publish_many([b"x"], priority=1001)
    with pytest.raises(TypeError, match="priority must be an int"):
        await b.publish(b"x", priority="2")
    assert b.stats().ready == 0


def _expire_as_after(server: RedisServer, key: str, seconds: float) -> None:
    """Delete `key` if Redis would have expired it `seconds` from now (its TTL)."""
    pttl = int(server.command("PTTL", key).split(b"\r\n")[0][1:])
    if 0 <= pttl <= seconds * 1000:
        server.command("DEL", key)


def _keys(server: RedisServer, pattern: str) -> list[str]:
    """The keys matching `pattern` (KEYS: a test's own queue, a few keys)."""
    reply = server.command("KEYS", pattern).decode()
    return [line for line in reply.split("\r\n")[1:] if line and line[0] not in "$*"]


def _lose_first_batch_reply(
    b: Any,
    server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    outage: float,
    script: str = "publish_batch",
) -> list[float]:
    """The first call of the publish script `script` reaches Redis, its reply is lost,
    and Redis stays out of reach for `outage` seconds (on the flusher's fake clock;
    Redis expires the publish marks and dedup ids as it would have meanwhile). Returns
    the clock."""
    clock = [1000.0]
    b.flusher.now = lambda: clock[0]
    execute, sha = b.link.execute, SCRIPTS[script].sha
    lost: list[bool] = []

    async def losing(commands: Sequence[Any]) -> list[Any]:
        replies: list[Any] = await execute(commands)
        if not lost and sha.encode() in pack(commands):
            lost.append(True)
            clock[0] += outage
            p = b.keys.prefix
            for key in _keys(server, f"{p}pub*:*") + _keys(server, f"{p}dedup:*"):
                _expire_as_after(server, key, outage)
            raise LinkDown("connection reset (the reply was lost)")
        return replies

    monkeypatch.setattr(b.link, "execute", losing)
    return clock


def _xlen(server: RedisServer, key: str) -> int:
    return int(server.command("XLEN", key).split(b"\r\n")[0][1:])


async def test_a_batch_resent_after_an_eleven_minute_outage_is_stored_once(
    redis_broker: Make, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish batch is stored, its reply lost, and Redis out of reach for 11 min:
    the batch sent again finds its mark and adds nothing. The mark lived 600 s, so
    the batch was added twice (a duplicate no dedup id had asked to be kept out)."""
    b = await redis_broker()
    _lose_first_batch_reply(b, redis_server, monkeypatch, outage=660.0)
    await asyncio.wait_for(b.publish(b"once"), 10)
    assert _xlen(redis_server, b.keys.stream(0)) == 1


async def test_a_batch_resent_after_the_mark_may_be_gone_is_refused_not_doubled(
    redis_broker: Make, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the mark's lifetime (an outage of two days) the outcome of a batch whose
    reply was lost cannot be known: its publishers get BrokerError saying so, and
    nothing is added again."""
    b = await redis_broker()
    _lose_first_batch_reply(b, redis_server, monkeypatch, outage=2 * 86_400.0)
    async with asyncio.timeout(10):
        with pytest.raises(BrokerError, match="outcome unknown"):
            await b.publish(b"once")
        await b.publish(b"next")  # the publishes after it go on
    assert _xlen(redis_server, b.keys.stream(0)) == 2


async def test_a_dedup_publish_resent_after_the_mark_may_be_gone_is_refused_not_doubled(
    redis_broker: Make, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish with a dedup id is stored, its reply lost, and Redis out of reach for
    two days (its mark and its dedup id expired meanwhile): as for a batch, its outcome
    is unknown and the publisher gets a BrokerError saying so, not a second copy. It
    was sent again blind, whatever the outage: stored twice, the dedup id no help."""
    b = await redis_broker()
    _lose_first_batch_reply(b, redis_server, monkeypatch, 2 * 86_400.0, "publish")
    async with asyncio.timeout(10):
        with pytest.raises(BrokerError, match="outcome unknown"):
            await b.publish(b"once", dedup_id="order-1")
        await b.publish(b"next", dedup_id="order-2")  # the publishes after it go on
    assert _xlen(redis_server, b.keys.stream(0)) == 2


async def test_a_dedup_publish_resent_late_while_its_mark_lives_gets_its_id(
    redis_broker: Make, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent again after nearly a day (past MARK_KEEP; the mark, kept a day, still
    there, the 5-minute dedup id gone), a dedup publish whose reply was lost only asks:
    it gets the id it was stored under, stored once."""
    b = await redis_broker()
    _lose_first_batch_reply(b, redis_server, monkeypatch, MARK_KEEP + 60.0, "publish")
    async with asyncio.timeout(10):
        mid = await b.publish(b"once", dedup_id="order-1")
    assert _xlen(redis_server, b.keys.stream(0)) == 1
    d = await lease(b)
    assert (d.message_id, d.body) == (mid, b"once")


async def test_stats_skip_a_registered_level_whose_key_is_no_stream(
    redis_broker: Make, redis_server: RedisServer
) -> None:
    """A registered level's stream is replaced by a string (a foreign writer): the
    stats read skips it and counts the rest. It failed WRONGTYPE on every read, so
    the flusher, whose stats never arrived, sent it again at once, for ever (a busy
    loop against Redis), and closing waited its 10 s out."""
    b = await redis_broker()
    await b.publish(b"m3", priority=3)
    await b.publish(b"m0", priority=0)
    redis_server.command("DEL", b.keys.stream(3))
    redis_server.command("SET", b.keys.stream(3), "foreign")
    async with asyncio.timeout(5.0):
        await b.refresh()
    assert b.stats().ready == 1
    assert not b.flusher.busy()
