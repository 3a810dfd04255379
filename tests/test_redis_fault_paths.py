"""The Redis read path when a round trip fails between taking entries and buffering
them, on a real redis-server: an entry Redis handed to this worker (pending for it)
must reach a consumer, not wait for its lease to run out. Faults are put in at the
exact round trip; every wait is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from support.redis_fixtures import RedisServer, lease, lease_many

from ccdash.brokers.base import BrokerError
from ccdash.brokers.redis.link import LinkDown, evalsha

Make = Callable[..., Any]


def break_round_trips(
    link: Any,
    monkeypatch: pytest.MonkeyPatch,
    when: Callable[[Sequence[Any]], bool],
    *,
    method: str = "_roundtrip",
    ran: bool = False,
    times: int = 1,
) -> None:
    """The next `times` round trips of `link.<method>` that `when(commands)` picks fail
    with LinkDown: before they reach Redis, or (`ran`) once Redis ran them and the
    connection dropped before their replies were read (an outcome the worker cannot
    know). The round trips after them go through."""
    real = getattr(link, method)
    left = [times]

    async def broken(commands: Sequence[Any]) -> list[Any]:
        if not left[0] or not when(commands):
            replies: list[Any] = await real(commands)
            return replies
        left[0] -= 1
        if ran:
            await real(commands)
            await link.disconnect()
        raise LinkDown("connection reset")

    monkeypatch.setattr(link, method, broken)


def reads(commands: Sequence[Any]) -> bool:
    """A round trip that reads: XREADGROUP or a script (the fetch script)."""
    return any(c[0] in ("XREADGROUP", "EVALSHA") for c in commands)


async def test_entries_a_parked_read_took_are_kept_when_the_wake_ack_fails(
    redis_broker: Make, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read parked in Redis returns a new entry and a wake entry; the round trip that
    acks the wake entry breaks. The new entry is this worker's in Redis already: it is
    buffered and leased at once (it was dropped, and came back only when its 30 s
    lease ran out, an attempt used up)."""
    b = await redis_broker(visibility_timeout=30.0)
    await b.presence.register()  # as the reader does before its first read
    await b.publish(b"m1")
    redis_server.command("XADD", b.keys.wake, "*", "w", "1")  # a message came back
    reader = b.reader
    reader.prios, reader.next_due = [b"0"], -1
    break_round_trips(reader.link, monkeypatch, lambda c: c[0][0] == "XACK", method="execute")
    with pytest.raises(LinkDown):
        await reader.block()
    d = await lease(b, within=5.0)
    assert (d.body, d.attempt) == (b"m1", 1)


async def test_entries_a_native_fetch_took_are_kept_when_reloading_the_scripts_breaks(
    redis_server_factory: Any, redis_broker: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch's script is refused NOSCRIPT (Redis forgot its scripts) while the native
    XREADGROUP beside it took an entry; the round trip that loads the scripts again
    breaks. The entry is this worker's in Redis already: it is buffered and leased at
    once (it was dropped with the round trip's replies and waited out its 30 s lease)."""
    server = redis_server_factory()
    b = await redis_broker(url=f"{server.url}?queue=noscript", visibility_timeout=30.0)
    await b.publish(b"m1")
    await b.presence.register()  # as the reader does before its first read
    server.command("SCRIPT", "FLUSH")
    reader = b.reader
    reader.prios, reader.floor = [b"0"], 0  # the native path
    break_round_trips(reader.link, monkeypatch, lambda c: c[0][:2] == ("SCRIPT", "LOAD"))
    with pytest.raises(LinkDown):
        await reader.fetch()
    d = await lease(b, within=5.0)
    assert (d.body, d.attempt) == (b"m1", 1)


async def test_a_level_a_foreign_writer_made_no_stream_fails_its_publishes_alone(
    redis_broker: Make, redis_server: RedisServer
) -> None:
    """A priority level's key holds a string (a foreign writer's): a publish to it
    raises (not stored), and the others of its group commit are stored once. The
    batch failed as a whole after its first XADDs and was sent again after every
    backoff: the other messages were added again each time (9 copies in 3 s), and
    the publish to the bad level waited for ever."""
    b = await redis_broker()
    redis_server.command("SET", b.keys.stream(3), "foreign")
    b.publish_nowait(b"a", priority=0)  # the same batch as the next one
    async with asyncio.timeout(5.0):
        with pytest.raises(BrokerError, match="priority 3"):
            await b.publish(b"b", priority=3)  # sends a and b at once, in this task
    mark = f"{b.keys.prefix}pubseq:{b.flusher.publisher}"
    assert redis_server.command("GET", mark) == b"$3\r\n1 1\r\n"  # batch 1, position 1
    # Batch 1 (a, b) sent again as after a lost reply: nothing added, b reported again.
    again = evalsha("publish_batch", b.keys.prefix, b.flusher.publisher, 1, b"1", b"0", b"x")
    assert await b.flusher.call((*again, b"1", b"d", b"3", b"y", b"1", b"d")) == [1]
    assert redis_server.command("XLEN", b.keys.stream(0)) == b":1\r\n"
    await b.publish(b"c", priority=0)
    await asyncio.wait_for(b.flush(), timeout=5.0)
    assert redis_server.command("XLEN", b.keys.stream(0)) == b":2\r\n"
    assert b.stats().ready == 2


@pytest.mark.parametrize("floor", [0, None], ids=["native", "scripted"])
async def test_entries_a_lost_fetch_took_are_adopted_at_once(
    redis_broker: Make,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    floor: int | None,
) -> None:
    """A fetch (native, or the script reading) runs in Redis but its reply is lost (the
    connection drops): the entry is pending for this live worker, which never saw it.
    The next round trip adopts it: leased again well within the 30 s lease, as its
    first attempt, handled once (it waited out the lease and, with max_attempts=1, went
    to the DLQ unhandled). A lease the worker holds, an entry whose ack is still queued
    and another worker's lease are not taken."""
    b = await redis_broker(visibility_timeout=30.0, max_attempts=1, fetch=2)
    other = await redis_broker(visibility_timeout=30.0, max_attempts=1, fetch=1)
    await b.publish(b"theirs")
    theirs = await lease(other)
    await other.reader.stop()  # it reads nothing more
    await b.publish(b"held")
    await b.publish(b"acked")
    held, acked = await lease_many(b, 2)
    await asyncio.wait_for(b.reader.idle.wait(), timeout=5.0)  # its read-ahead is done
    await b.publish(b"m1")
    reader = b.reader
    reader.prios, reader.floor = [b"0"], floor
    kick = b.flusher.kick
    monkeypatch.setattr(b.flusher, "kick", lambda: None)
    b.ack_nowait(acked.receipt)  # no longer in the book, pending in Redis until sent
    break_round_trips(reader.link, monkeypatch, reads, ran=True)
    with pytest.raises(LinkDown):
        await reader.fetch()
    pending = redis_server.command("XPENDING", b.keys.stream(0), "ccdash", "-", "+", "9", b.worker)
    assert pending.count(b.worker.encode()) >= 2  # held and m1: Redis ran the read
    d = await lease(b, within=5.0)
    assert (d.body, d.attempt) == (b"m1", 1)
    monkeypatch.setattr(b.flusher, "kick", kick)
    await b.ack(d.receipt)
    await b.ack(held.receipt)
    await other.ack(theirs.receipt)  # still the other worker's lease
    assert b.book.known() == set()
    await b.refresh()
    stats = b.stats()
    assert (stats.in_flight, stats.dead, stats.ready) == (0, 0, 0)


async def test_entries_a_lost_parked_read_took_are_adopted_at_once(
    redis_broker: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for a read parked in Redis (XREADGROUP BLOCK) whose reply is lost."""
    b = await redis_broker(visibility_timeout=30.0, max_attempts=1)
    await b.presence.register()  # as the reader does before its first read
    await b.publish(b"m1")
    reader = b.reader
    reader.prios, reader.next_due = [b"0"], -1
    break_round_trips(reader.link, monkeypatch, reads, ran=True)
    with pytest.raises(LinkDown):
        await reader.block()
    d = await lease(b, within=5.0)
    assert (d.body, d.attempt) == (b"m1", 1)
    await b.ack(d.receipt)
    await b.refresh()
    assert (b.stats().in_flight, b.stats().dead) == (0, 0)
