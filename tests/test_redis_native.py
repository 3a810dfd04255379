"""The Redis broker's per-batch paths on a real redis-server: fetches read entries
with a native XREADGROUP (no entry passes through Lua) from the highest levels
that may have some, and acks are one XACK per batch with acked entries trimmed
in bulk. Order, receipts and counts stay what the contract says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from support.redis_fixtures import lease
from support.redis_monitor import monitor

from ccdash.brokers.base import Delivery, ReceiptRejected
from ccdash.brokers.redis.locate import locate_ids
from ccdash.fleet.connect import connect

Make = Callable[..., Any]


def native_reads(lines: list[bytes]) -> int:
    """XREADGROUPs a client sent itself (not from inside a script) without BLOCK."""
    return sum(
        1 for x in lines if b'"XREADGROUP"' in x and b" lua]" not in x and b'"BLOCK"' not in x
    )


async def test_native_fetch_keeps_priority_order_across_levels(
    redis_broker: Make, redis_server: Any
) -> None:
    """With three levels backlogged and a small read-ahead, every read after the first
    is native, and the deliveries still come highest priority first, FIFO within one."""
    pub = await redis_broker(worker="pub", fetch=1)
    for prio in (0, 5, 9):  # the levels exist before the backlog
        await pub.publish("warm", priority=prio)
    con = await redis_broker(worker="con", fetch=4)
    for _ in range(3):
        await con.ack((await lease(con)).receipt)
    await con.settled()
    for i in range(30):
        pub.publish_nowait(i, priority=(0, 5, 9)[i % 3])
    await pub.flush()
    async with monitor(redis_server.port) as lines:
        got = []
        for _ in range(30):
            d = await lease(con)
            got.append((d.priority, d.body))
            con.ack_nowait(d.receipt)
        await con.flush()
    want = [(p, i) for p in (9, 5, 0) for i in range(30) if (0, 5, 9)[i % 3] == p]
    assert got == want
    assert native_reads(lines) >= 5


async def test_returned_message_goes_before_unread_entries_on_the_native_path(
    redis_broker: Make, redis_server: Any
) -> None:
    """A message nacked while the worker reads natively comes back in its place: after
    what was already read ahead, before every entry of its level not yet read."""
    broker = await redis_broker(fetch=4)
    for i in range(12):
        broker.publish_nowait(i)
    await broker.flush()
    async with monitor(redis_server.port) as lines:
        first = await lease(broker)  # read 0-3 (the script read: nothing known yet)
        await broker.nack(first.receipt, "again", delay=0)
        got = []
        for _ in range(12):
            d = await lease(broker)
            got.append((d.body, d.attempt))
            broker.ack_nowait(d.receipt)
        await broker.flush()
    assert first.body == 0
    assert got == [(1, 1), (2, 1), (3, 1), (0, 2)] + [(i, 1) for i in range(4, 12)]
    assert native_reads(lines) >= 2


async def test_stale_ack_of_a_natively_read_entry_is_refused(redis_broker: Make) -> None:
    """An entry read natively whose lease expired and went to another worker: the first
    holder's ack is refused by Redis, confirmed or group-committed, even when its
    local view is stale; the new holder's ack counts once."""
    a = await redis_broker(worker="wa", visibility_timeout=0.8, ttl=0.3, fetch=2)
    b = await redis_broker(worker="wb", visibility_timeout=0.8, ttl=0.3, fetch=1)
    for i in range(4):
        a.publish_nowait(i)
    await a.flush()
    early = [await lease(a, "c"), await lease(a, "c")]  # the first (scripted) read
    assert a.reader.floor == 0  # it filled: the next read is native
    mine = await lease(a, "c")
    other = await lease(a, "c")
    for d in early:
        await a.ack(d.receipt)
    entries = [a.book.leases[d.receipt] for d in (mine, other)]
    taken: dict[Any, Delivery] = {}
    async with asyncio.timeout(10):
        while len(taken) < 2:  # both leases expire: b gets them
            d = await lease(b, "d", within=10.0)
            taken[d.body] = d
    for e in entries:
        e.deadline = a.clock.now() + 60  # a's local view is stale
    with pytest.raises(ReceiptRejected):
        await a.ack(mine.receipt)
    a.ack_nowait(other.receipt)
    await a.flush()
    assert a.flusher.late_rejected == 1
    for d in taken.values():
        await b.ack(d.receipt)
    await b.flush()
    await b.refresh()
    s = b.stats()
    assert (s.published, s.acked, s.ready, s.in_flight) == (4, 4, 0, 0)


async def test_acks_trim_in_bulk_and_counts_stay_exact(
    redis_broker: Make, redis_server: Any, redis_url: str
) -> None:
    """Acks delete no entry one by one (no XDEL); entries acked behind an older lease
    stay in the stream until it ends, yet ready counts and the loss check see them
    as acked; once nothing is pending the stream is empty."""
    broker = await redis_broker(fetch=200, visibility_timeout=30.0)
    ids = [broker.publish_nowait(i) for i in range(150)]
    await broker.flush()
    got: list[Delivery] = []
    async with asyncio.timeout(10):
        while len(got) < 150:
            await broker.wait_ready()
            got += await broker.receive([f"c{len(got) % 8}"] * (150 - len(got)))
    oldest, rest = got[0], got[1:]
    async with monitor(redis_server.port) as lines:
        for i in range(0, len(rest), 37):
            assert await broker.ack_many([d.receipt for d in reversed(rest[i : i + 37])]) == []
    assert not [x for x in lines if b'"XDEL"' in x]
    stream = broker.keys.stream(0)
    assert int(redis_server.command("XLEN", stream).split(b"\r\n")[0][1:]) > 1  # kept
    await broker.refresh()
    s = broker.stats()
    assert (s.ready, s.in_flight, s.acked) == (0, 1, 149)
    client, keys = await connect(redis_url)
    try:
        where = await locate_ids(client, keys, ids)
        assert where.outstanding == {oldest.message_id}
        await broker.ack(oldest.receipt)
        assert await client.xlen(stream) == 0
        assert not (await locate_ids(client, keys, ids)).outstanding
    finally:
        await client.aclose()
    await broker.refresh()
    s = broker.stats()
    assert (s.ready, s.in_flight, s.acked) == (0, 0, 150)


async def test_counts_after_lost_state_forget_the_acked_entries_of_the_lost_stream(
    redis_broker: Make, redis_server: Any
) -> None:
    """Entries acked behind an older lease are still in the stream when Redis loses
    it; once the group is made again, the ready count is that of the new stream
    (nothing subtracted for the acked entries that went with the old one)."""
    broker = await redis_broker()
    for i in range(3):
        broker.publish_nowait(i)
    await broker.flush()
    held = [await lease(broker) for _ in range(3)]
    assert await broker.ack_many([d.receipt for d in held[1:]]) == []  # behind held[0]
    for key in [broker.keys.stream(0), broker.keys.priorities]:
        redis_server.command("DEL", key)
    with pytest.raises(ReceiptRejected):
        await broker.ack(held[0].receipt)
    assert broker.lost_state_events == 1
    await broker.flush()
    await broker.publish("after")
    await broker.refresh()
    assert (broker.stats().ready, broker.stats().in_flight) == (1, 0)
    assert (await lease(broker)).body == "after"


async def test_a_lease_held_for_long_does_not_let_acked_entries_pile_up(
    redis_broker: Make, redis_server: Any
) -> None:
    """Behind one lease held all along, acked entries wait for the bulk trim only up
    to GHOST_LIMIT per stream; past it they are deleted as they are acked, so the
    stream stays bounded, and the counts stay exact."""
    from ccdash.brokers.redis.scripts.prelude import GHOST_LIMIT

    total = GHOST_LIMIT + 3000
    broker = await redis_broker(fetch=5000, visibility_timeout=60.0)
    for _ in range(total):
        broker.publish_nowait(b"x")
    await broker.flush()
    oldest = await lease(broker)
    done = 0
    async with asyncio.timeout(60):
        while done < total - 1:
            await broker.wait_ready()
            got = await broker.receive(["c"] * 1000)
            assert await broker.ack_many([d.receipt for d in got]) == []
            done += len(got)
    stream = broker.keys.stream(0)
    size = int(redis_server.command("XLEN", stream).split(b"\r\n")[0][1:])
    assert size <= GHOST_LIMIT + 1000  # one ack batch past the limit at most
    await broker.refresh()
    s = broker.stats()
    assert (s.ready, s.in_flight, s.acked) == (0, 1, total - 1)
    await broker.ack(oldest.receipt)
    assert int(redis_server.command("XLEN", stream).split(b"\r\n")[0][1:]) == 0
