"""Redis leases at scale: extensions in batches, the first k leases without a sort of
all, a stats view that a stale read cannot inflate, and thousands read again at once."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from support.redis_fixtures import lease_many

from ccdash import Engine, EngineConfig
from ccdash.brokers.base import REASON_CONSUMER_FAILED
from ccdash.brokers.redis.link import evalsha, pack
from ccdash.brokers.redis.local import Entry, LocalBook
from ccdash.brokers.redis.views import parse_stats

Make = Callable[..., Any]


def _extended_by(cmd: Any) -> int:
    """Leases a command extends: an XCLAIM carries, after the key, group, consumer and
    min-idle time, the ids, then IDLE <ms> JUSTID. Commands are RESP-encoded when
    queued, so read the encoding."""
    packed = pack([cmd])
    args, pos = [], packed.index(b"\r\n") + 2
    while pos < len(packed):
        end = packed.index(b"\r\n", pos)
        n = int(packed[pos + 1 : end])
        args.append(packed[end + 2 : end + 2 + n])
        pos = end + 4 + n
    if args[:1] != [b"XCLAIM"]:
        return 0
    return len(args) - 8


async def test_health_tick_extends_every_due_lease_in_one_round_trip(redis_url: str) -> None:
    """With 40 leases held past half their visibility timeout, the health tick extends
    them all in one Redis round trip (not one sequential round trip per lease), and no
    lease is lost."""
    release = asyncio.Event()

    async def hold(_: Any) -> None:
        await release.wait()

    cfg = EngineConfig(
        consumers=4,
        prefetch=10,
        visibility_timeout=1.2,
        heartbeat_interval=0.2,
        heartbeat_timeout=0.6,
    )
    async with Engine(cfg, handler=hold, broker=redis_url + "&ttl=0.9") as engine:
        link = engine.broker.flusher.link  # type: ignore[attr-defined]
        execute = link.execute
        carrying: list[int] = []  # leases extended, per round trip that extended any
        all_extended = asyncio.Event()

        async def counting(cmds: Any) -> Any:
            n = sum(_extended_by(c) for c in cmds)
            if n:
                carrying.append(n)
                if sum(carrying) >= 40:
                    all_extended.set()
            return await execute(cmds)

        link.execute = counting
        await engine.publish_many([b"x"] * 40)
        async with asyncio.timeout(10):
            await all_extended.wait()
        assert carrying[0] == 40
        assert len(engine.broker.leases(None)) == 40
        release.set()
        await engine.join(timeout=10)
        assert engine.snapshot().acked == 40


class _CountedEntry(Entry):
    """An Entry that counts how often its deadline is read."""

    __slots__ = ()
    reads = 0

    def __getattribute__(self, name: str) -> Any:
        if name == "deadline":
            _CountedEntry.reads += 1
        return object.__getattribute__(self, name)


def _entry(i: int, deadline: float, cls: type[Entry] = Entry, prio: int = 0) -> Entry:
    return cls(b"%d" % prio, b"%d-0" % i, [b"m", b"m%d" % i, b"d", b"bx"], deadline)


def test_first_leases_without_looking_at_all_of_them() -> None:
    """The 10 soonest of 5,000 leases are found by reading a few deadlines, not all."""
    book = LocalBook()
    for i in range(5000):
        entry = _entry(i, 100.0 + i, _CountedEntry)
        book.add(entry)
        book.lease(book.pop(), "c", 0.0)
    _CountedEntry.reads = 0
    infos = book.lease_infos(10)
    assert [li.message_id for li in infos] == [f"m{i}" for i in range(10)]
    assert _CountedEntry.reads < 100


def test_first_leases_stay_in_deadline_order_through_extends_and_strays() -> None:
    """Leased out of deadline order, extended (long and short) and acked at random, the
    book's first k leases are always the k soonest deadlines."""
    rng = random.Random(7)
    book = LocalBook()
    now = 0.0
    for i in range(400):
        now += rng.random()
        book.add(_entry(i, now + 30.0 - rng.random() * 5, prio=rng.randrange(3)))
        if rng.random() < 0.7 and book.buffered:
            book.lease(book.pop(), "c", 0.0)
        if book.leases and rng.random() < 0.3:
            r = rng.choice(list(book.leases))
            book.extended([(r, book.leases[r])], now + rng.choice([30.0, 1.0]))
        if book.leases and rng.random() < 0.2:
            book.unlease(rng.choice(list(book.leases)))
        k = rng.randrange(1, 20)
        want = sorted(e.deadline for e in book.leases.values())[:k]
        assert [li.deadline for li in book.lease_infos(k)] == want


async def test_stale_stats_read_never_shows_acked_messages_as_ready(redis_broker: Make) -> None:
    """A stats read taken before the reader fetched 64 messages, applied after they were
    handled and acked, shows depth 0 (not 64) and nothing in flight."""
    broker = await redis_broker()
    for _ in range(64):
        broker.publish_nowait(b"x")
    await broker.flush()
    t0 = time.monotonic()
    stale = parse_stats(await broker.flusher.call(evalsha("stats", broker.keys.prefix)), t0)
    assert stale.ready == 64
    got = await lease_many(broker, 64, within=5)
    for d in got:
        broker.ack_nowait(d.receipt)
    broker._on_snapshot(stale)  # the read that was in flight lands only now
    s = broker.stats()
    assert (s.depth, s.in_flight, broker.outstanding()) == (0, 0, 0)


async def test_extend_many_resets_every_lease_in_redis(redis_broker: Make) -> None:
    """extend_many of 300 leases held for a while resets the idle time (the lease clock)
    of every one of them in Redis, and reports each new deadline."""
    broker = await redis_broker(visibility_timeout=5.0, fetch=400)
    for _ in range(300):
        broker.publish_nowait(b"x")
    await broker.flush()
    got = await lease_many(broker, 300, within=5)
    await asyncio.sleep(0.6)
    deadlines = await broker.extend_many([d.receipt for d in got], 5.0)
    assert all(d is not None and d > broker.clock.now() + 4.0 for d in deadlines)
    rows = await broker.flusher.call(
        ("XPENDING", broker.keys.level_stream(b"0"), "ccdash", "-", "+", 1000, broker.worker)
    )
    assert len(rows) == 300
    assert max(int(idle) for _, _, idle, _ in rows) < 500


async def test_ack_looks_up_only_the_range_it_acks_not_every_lease_held(
    redis_broker: Make, redis_server: Any
) -> None:
    """Acking 10 messages while the worker holds 2,000 other leases is one XACK of
    those 10 ids, and no pending list Redis reads for it is longer than 100 entries
    (the ack's cost does not grow with the leases held)."""
    broker = await redis_broker(visibility_timeout=30.0, fetch=2100)
    for _ in range(2010):
        broker.publish_nowait(b"x")
    await broker.flush()
    got = await lease_many(broker, 2010, within=10)
    reader, writer = await asyncio.open_connection("127.0.0.1", redis_server.port)
    writer.write(b"MONITOR\r\n")
    await writer.drain()
    assert (await reader.readline()).startswith(b"+OK")
    assert await broker.ack_many([d.receipt for d in got[-10:]]) == []
    # MONITOR streams what ran, the scripts' own commands included; the ack script
    # ends with its counter update.
    lines: list[bytes] = []
    async with asyncio.timeout(5):
        while not any(b'"HINCRBY"' in line and b'"acked"' in line for line in lines):
            lines.append(await reader.readline())
    writer.close()
    acks = [line for line in lines if b'"XACK"' in line]
    assert len(acks) == 1 and all(
        str(d.receipt).split("/")[1].encode() in acks[0] for d in got[-10:]
    )
    counts = []  # COUNT of each listing of pending entries (not the summary form)
    for line in lines:
        words = [w.strip(b'"') for w in line.split()]
        if b"XPENDING" in words:
            rest = words[words.index(b"XPENDING") + 3 :]  # after the key and group
            if rest[:1] == [b"IDLE"]:
                rest = rest[2:]
            if len(rest) >= 3:
                counts.append(int(rest[2]))
    assert max(counts, default=0) <= 100


async def test_scattered_extensions_are_checked_by_range_not_one_lookup_per_lease(
    redis_broker: Make, redis_server: Any
) -> None:
    """2,000 leases extended by 20 concurrent calls that each hold every 20th one (as a
    pool's consumers do: the dispatcher deals messages out in turn) are all kept, and
    Redis checks them with a few range lookups of the worker's pending list, not a
    lookup per lease (the calls are merged and sorted by stream id)."""
    broker = await redis_broker(visibility_timeout=30.0, fetch=2100)
    for _ in range(2000):
        broker.publish_nowait(b"x")
    await broker.flush()
    got = await lease_many(broker, 2000, within=10)
    receipts = [d.receipt for d in got]
    reader, writer = await asyncio.open_connection("127.0.0.1", redis_server.port)
    writer.write(b"MONITOR\r\n")
    await writer.drain()
    assert (await reader.readline()).startswith(b"+OK")
    parts = await asyncio.gather(*[broker.extend_many(receipts[k::20], 30.0) for k in range(20)])
    assert all(d is not None for part in parts for d in part)
    lines: list[bytes] = []
    async with asyncio.timeout(5):  # MONITOR streams what ran, the scripts' own commands too
        while sum(b'"XCLAIM"' in line for line in lines) < 2:
            lines.append(await reader.readline())
    writer.close()
    me = b'"%s"' % broker.worker.encode()
    lookups = [line for line in lines if b'"XPENDING"' in line and line.split()[-1] == me]
    assert len(lookups) <= 10, len(lookups)


async def test_a_worker_reading_far_ahead_takes_back_thousands_that_came_back(
    redis_broker: Make, redis_url: str
) -> None:
    """8,200 leases that come back at once (their worker failed them) are read again by
    a worker that reads 10,000 ahead: the fetch moves them out of the level's returned
    set in slices (Lua's unpack takes only a few thousand values at a time; the fetch
    failed on every try, so nothing more was ever read). Calls of 8,200 entries may
    take seconds on a loaded machine: a Redis timeout well above the default 5 s, and
    a visibility timeout well above the time both reads take, since nothing extends
    these leases (no engine, no health tick): at the fixture's 5 s they ran out while
    the second read went on and came back as attempts 3 and 4."""
    broker = await redis_broker(
        fetch=10_000, url=f"{redis_url}&timeout=60", visibility_timeout=120.0
    )
    for _ in range(8200):
        broker.publish_nowait(b"x")
    await broker.flush()
    got = await lease_many(broker, 8200, within=30)
    assert await broker.release([d.receipt for d in got], REASON_CONSUMER_FAILED) == 8200
    again = await lease_many(broker, 8200, within=30)
    assert {d.attempt for d in again} == {2}
    assert {d.message_id for d in again} == {d.message_id for d in got}


async def test_extend_many_keeps_what_is_still_pending_and_drops_what_was_taken(
    redis_broker: Make,
) -> None:
    """Of three leases, the one whose entry left the pending list behind this worker's
    back (as when a peer reclaims an expired lease: acked and deleted) is reported gone
    and leaves the book; the other two are kept."""
    broker = await redis_broker()
    for _ in range(3):
        broker.publish_nowait(b"x")
    await broker.flush()
    got = await lease_many(broker, 3)
    stream = broker.keys.level_stream(b"0")
    eid = str(got[1].receipt).split("/")[1]
    await broker.flusher.call(("XACK", stream, "ccdash", eid))
    await broker.flusher.call(("XDEL", stream, eid))
    deadlines = await broker.extend_many([d.receipt for d in got], 5.0)
    assert [d is not None for d in deadlines] == [True, False, True]
    assert [li.message_id for li in broker.leases(None)] == [got[0].message_id, got[2].message_id]
