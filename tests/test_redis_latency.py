"""What a message waits for on Redis between its publish and its handler: the round
trips, the tasks and the Redis commands on that path are counted (the timings
themselves are in benchmarks/latency.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from support.polling import until
from support.redis_fixtures import lease
from support.redis_monitor import monitor, script_calls

from ccdash import Engine, EngineConfig
from ccdash.brokers.redis.link import LinkDown, RedisLink
from ccdash.brokers.redis.reader import BLOCK_MS
from ccdash.brokers.redis.scripts import SCRIPTS

Make = Callable[..., Any]


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


async def test_a_publish_runs_one_xadd_in_redis_and_only_its_batchs_count_and_mark(
    redis_broker: Make, redis_server: Any
) -> None:
    """A message published one at a time to a level that exists costs Redis an XADD,
    the batch's count and its mark (HINCRBY, SET), nothing more: no TIME, no stored
    check of the mark (only a batch sent again looks), no level check (ZADD), no
    prelude (its lines ran on every publish: TIME at least)."""
    broker = await redis_broker()
    await broker.publish("first")  # the level exists from here on
    async with monitor(redis_server.port) as lines:
        for i in range(3):
            await broker.publish(i)
    level = (broker.keys.prefix + "q:0").encode()
    publishes = [cmds for line, cmds in script_calls(lines) if b"XADD" in cmds]
    assert len(publishes) == 3, script_calls(lines)
    for cmds in publishes:
        assert cmds == [b"XADD", b"HINCRBY", b"SET"], cmds
    assert sum(1 for x in lines if b'"XADD" "' + level in x and b"NOMKSTREAM" in x) == 3


def _record_tasks(link: RedisLink, seen: list[str]) -> None:
    """Record the task each round trip of `link` runs in."""
    roundtrip = link._roundtrip

    async def recording(commands: Sequence[Any]) -> list[Any]:
        task = asyncio.current_task()
        seen.append(task.get_name() if task is not None else "")
        return await roundtrip(commands)

    link._roundtrip = recording  # type: ignore[method-assign]


async def test_a_publish_to_an_idle_broker_is_written_in_the_publishers_task(
    redis_broker: Make,
) -> None:
    """With nothing else in flight, `publish` sends its message itself: no flusher task
    to wake, no task per round trip (each was a loop turn before the write and two
    after the reply, on every message's path)."""
    broker = await redis_broker()
    await broker.publish("first")
    me = asyncio.current_task()
    assert me is not None
    seen: list[str] = []
    _record_tasks(broker.link, seen)
    for i in range(5):  # a heartbeat may be in flight at one of them
        await until(lambda: not broker.flusher.busy(), 10, "the write path idle")
        await broker.publish(i)
    assert me.get_name() in seen, seen


async def test_a_fetched_message_is_handed_to_a_consumer_by_the_reader_itself(
    redis_url: str,
) -> None:
    """A message the reader's parked read brings is dispatched in the reader's task:
    the dispatcher task is not woken first (a loop turn before every handler)."""
    handled: asyncio.Queue[Any] = asyncio.Queue()

    async def handle(d: Any) -> None:
        handled.put_nowait(d.body)

    cfg = EngineConfig(consumers=2, min_consumers=1)
    publisher = Engine(EngineConfig(consumers=0, min_consumers=0), broker=redis_url)
    async with Engine(cfg, handler=handle, broker=redis_url) as engine, publisher:
        dispatcher = engine.dispatcher
        dispatch = dispatcher.dispatch_nowait
        gave: list[str] = []

        def recording(hint: Any) -> None:
            if engine.broker.ready_count():
                task = asyncio.current_task()
                gave.append(task.get_name() if task is not None else "")
            dispatch(hint)

        dispatcher.dispatch_nowait = recording  # type: ignore[method-assign]
        reader = engine.broker.reader  # type: ignore[attr-defined]
        for i in range(3):
            await until(lambda: reader._blocking, 10, "the reader parked in Redis")
            await publisher.publish(i)
            assert await asyncio.wait_for(handled.get(), 10) == i
    assert gave and set(gave) == {"ccdash-redis-reader"}, gave


async def test_a_publish_batch_whose_reply_was_lost_is_stored_once(redis_broker: Make) -> None:
    """The connection breaks after Redis stored a batch, before its reply came: the
    batch is sent again and Redis, finding its number, adds nothing (one entry, and
    counted once)."""
    broker = await redis_broker()
    await broker.publish("first")
    con = await redis_broker(worker="con")
    await con.ack((await lease(con)).receipt)
    roundtrip = broker.link._roundtrip
    batch = SCRIPTS["publish_batch"].sha
    lost: list[bool] = []

    async def losing(commands: Sequence[Any]) -> list[Any]:
        replies: list[Any] = await roundtrip(commands)
        if not lost and any(c[0] == "EVALSHA" and c[1] == batch for c in commands):
            lost.append(True)
            raise LinkDown("connection reset (the reply was lost)")
        return replies

    broker.link._roundtrip = losing
    await asyncio.wait_for(broker.publish("once"), 10)
    assert lost
    got = await lease(con)
    assert got.body == "once" and got.attempt == 1
    await con.ack(got.receipt)
    await con.settled()
    assert not await con.receive(["c"])
    await broker.flusher.call(("PING",))  # a stats read rides with it
    assert broker.stats().published == 2


def _oversleeps(reader: Any, nacked: asyncio.Event, answered: asyncio.Event) -> list[int]:
    """Spy on the reader's link: the BLOCK timeouts (ms) over 250 of reads that ran them
    out and ended after `nacked` was set. A fetch answered before `nacked` sets
    `answered` and is taken by the reader only once `nacked` is set."""
    execute = reader.link.execute
    fetch = SCRIPTS["fetch"].sha
    overslept: list[int] = []

    async def spying(cmds: Any) -> Any:
        before = not nacked.is_set()
        replies = await execute(cmds)
        if before and any(c[0] == "EVALSHA" and c[1] == fetch for c in cmds):
            answered.set()
            await nacked.wait()
        for cmd, reply in zip(cmds, replies, strict=True):
            if nacked.is_set() and "BLOCK" in cmd and not reply:
                ms = int(cmd[cmd.index("BLOCK") + 1])
                if ms > 250:
                    overslept.append(ms)
        return replies

    reader.link.execute = spying
    return overslept


async def test_a_retry_nacked_while_a_fetch_is_out_is_not_waited_past(redis_broker: Make) -> None:
    """A nack with a short delay lands while the reader's fetch is on its way (Redis ran
    the fetch before the nack): no read then stays parked in Redis past the retry's due
    time. The old code parked for BLOCK_MS (2 s) on that fetch's answer (nothing
    delayed) with the retry due in 0.2 s; under load a retry with a later deadline came
    back first (test_redis_broker.py's deadline-order test)."""
    broker = await redis_broker()
    await broker.publish("x")
    d = await lease(broker)
    answered, nacked = asyncio.Event(), asyncio.Event()
    overslept = _oversleeps(broker.reader, nacked, answered)
    broker.reader.changed()  # the next read fetches (as after a receive that leaves the
    broker.reader.want()  # buffer low while the last read did not take all there was)
    await asyncio.wait_for(answered.wait(), 10)
    await broker.nack(d.receipt, delay=0.2)
    nacked.set()
    again = await lease(broker, within=10)
    assert (again.body, again.attempt) == ("x", 2)
    assert not overslept, f"parked until {overslept} ms ran out, a retry due in 200 ms"


async def test_a_retry_nacked_while_the_reader_is_parked_unparks_it(redis_broker: Make) -> None:
    """One consumer waits (the reader parked in Redis, nothing delayed: for BLOCK_MS)
    when another nacks with a short delay: the park ends and the retry is read when
    due, not when the park runs out (the old code: 2 s, with the retry due in 0.2 s)."""
    broker = await redis_broker()
    await broker.publish("x")
    d = await lease(broker)
    answered, nacked = asyncio.Event(), asyncio.Event()
    overslept = _oversleeps(broker.reader, nacked, answered)
    nacked.set()  # no fetch held: the park under way is the one this nack must end
    waiting = asyncio.ensure_future(lease(broker, within=10))
    await until(lambda: broker.reader._blocking, 5, "the reader parked in Redis")
    await broker.nack(d.receipt, delay=0.2)
    again = await waiting
    assert (again.body, again.attempt) == ("x", 2)
    assert not overslept, f"parked until {overslept} ms ran out, a retry due in 200 ms"
