"""Every broker under hostile input (#11): handler text a store would refuse, and
entries that do not decode. Each test runs on memory, SQLite and Redis (the
`brokers` harness, tests/support/broker_harness.py) unless marked otherwise."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from support.broker_harness import Brokers

from ccdash import Engine, EngineConfig
from ccdash.brokers.base import (
    ERROR_TEXT_LIMIT,
    RAW_LIMIT,
    REASON_CONSUMER_FAILED,
    REASON_FAILED,
    BrokerError,
    Delivery,
)
from ccdash.brokers.sqlite.frame import next_deadline
from ccdash.engine.snapshot import Snapshot

BAD_TEXT = "OSError: cannot open 'f\udcff\x00le'\nline two"
STORED = "OSError: cannot open 'f\\udcff\\x00le'\nline two"  # escapes, the newline kept


async def drain(url: str) -> tuple[list[str], Snapshot, list[str]]:
    """Run two consumers on `url` until the queue is empty: the ids handled, the final
    snapshot and the event kinds."""
    done: list[str] = []

    async def handler(d: Delivery) -> None:
        done.append(d.message_id)

    cfg = EngineConfig(consumers=2, visibility_timeout=10.0, seed=1)
    async with Engine(cfg, handler=handler, broker=url) as engine:
        await engine.join(timeout=20)
        return done, engine.snapshot(), [e.kind for e in engine.events]


async def test_error_text_with_lone_surrogate_and_nul_is_stored_escaped(brokers: Brokers) -> None:
    """A nack whose error holds a lone surrogate and a NUL is stored (as visible
    escapes) and the acks and publishes after it still go through."""
    broker = await brokers.make(max_attempts=1)
    await broker.publish({"n": 1})
    await broker.publish({"n": 2})
    first, second = await brokers.receive(broker, ["c1", "c2"])
    async with asyncio.timeout(10):  # a broker that retries the bad write for ever hangs here
        assert await broker.nack(first.receipt, BAD_TEXT) is True
        await broker.ack(second.receipt)
        await broker.publish({"n": 3})
    [dead] = await brokers.dead_letters(broker)
    assert (dead.reason, dead.last_error) == (REASON_FAILED, STORED)
    assert [h.error for h in dead.history] == [STORED]
    stats = await brokers.stats(broker)
    assert (stats.acked, stats.dead, stats.ready) == (1, 1, 1)


async def test_release_error_text_is_stored_escaped_and_bounded(brokers: Brokers) -> None:
    """A consumer-failed release with a huge, NUL-laden error text dead-letters the
    message with that text escaped and cut to the stored bound."""
    broker = await brokers.make(max_attempts=1)
    await broker.publish(b"x")
    await brokers.lease(broker, "dies")
    async with asyncio.timeout(10):
        assert await broker.release_holder("dies", REASON_CONSUMER_FAILED, "\x00" * 100_000) == 1
    [dead] = await brokers.dead_letters(broker)
    assert dead.reason == REASON_CONSUMER_FAILED
    assert "\x00" not in dead.last_error and dead.last_error.startswith("\\x00\\x00")
    assert len(dead.last_error) <= ERROR_TEXT_LIMIT


@pytest.mark.brokers("sqlite")
async def test_one_write_sqlite_cannot_take_fails_alone(brokers: Brokers) -> None:
    """Publishes SQLite cannot store (a priority beyond its 64-bit integers) fail on
    their own; the publishes committed in the same batch are all stored and the
    broker keeps working."""
    broker = await brokers.make()
    gate = threading.Event()  # holds the writer thread: what is queued meanwhile is one batch
    held = broker._ready().call(lambda: gate.wait(10))
    good, bad = [], []
    for i in range(50):
        good.append(broker.publish_nowait({"n": i}))
        bad.append(asyncio.ensure_future(broker.publish(b"x", priority=2**70)))
    await asyncio.sleep(0)  # the bad publishes are queued too
    gate.set()
    await held
    results = await asyncio.gather(*bad, return_exceptions=True)
    assert all(isinstance(r, BrokerError) for r in results)
    async with asyncio.timeout(10):
        await broker.flush()
        assert await broker.publish({"n": "after"})
    assert (await brokers.stats(broker)).ready == 51


async def test_dedup_id_with_lone_surrogate_still_deduplicates(brokers: Brokers) -> None:
    """A dedup id holding a lone surrogate and a NUL is accepted, and a second
    publish with it is the no-op the contract promises."""
    broker = await brokers.make()
    async with asyncio.timeout(10):
        first = await broker.publish(b"a", dedup_id="k\udcff\x00")
        assert await broker.publish(b"b", dedup_id="k\udcff\x00") == first
    assert (await brokers.stats(broker)).ready == 1


async def test_undecodable_sqlite_rows_are_dead_lettered_and_the_engine_goes_on(
    tmp_path: Path,
) -> None:
    """Rows whose JSON body does not decode (corruption, a foreign writer: invalid
    JSON, invalid UTF-8, deep nesting, a 5,000-digit integer, no bytes, NaN, Infinity,
    a number past a float's range, which ccdash's encoder never writes) or whose id is not
    UTF-8 go to the DLQ as `undecodable` with their bytes, with an event and an
    alert; the rest are handled."""
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}"
    bad_bodies = [b"{not json", b'"\xff"', b"[" * 200_000 + b"]" * 200_000, b"9" * 5000, b""]
    bad_bodies += [b'{"n": NaN}', b"[-Infinity]", b'{"n": 1e999}']
    async with Engine(EngineConfig(consumers=0, min_consumers=0), broker=url) as producer:
        bad = [await producer.publish({"bad": i}) for i in range(len(bad_bodies))]
        bad_id = await producer.publish({"bad": "id"})
        good = [await producer.publish({"n": i}) for i in range(10)]
    with sqlite3.connect(path) as conn:
        for mid, body in zip(bad, bad_bodies, strict=True):
            conn.execute("UPDATE msgs SET body = ? WHERE mid = ?", (body, mid))
        conn.execute("UPDATE msgs SET mid = CAST(? AS TEXT) WHERE mid = ?", (b"\xff\xfe", bad_id))
    done, snap, kinds = await drain(url)
    assert sorted(done) == sorted(good)
    dead = {d.message_id: d for d in snap.dead_letters}
    [renamed] = set(dead) - set(bad)  # its id was not UTF-8: it gets one of ours
    assert renamed.startswith("undecodable-") and "not UTF-8" in dead[renamed].last_error
    assert set(bad) <= set(dead) and {d.reason for d in dead.values()} == {"undecodable"}
    assert dead[bad[0]].body == b"{not json"
    assert kinds.count("undecodable") == len(bad) + 1
    assert any(a.name == "undecodable-entry" for a in snap.alerts)


async def test_sqlite_views_read_text_a_foreign_writer_left_undecodable(tmp_path: Path) -> None:
    """A dead row whose id, reason and error are not UTF-8 (a foreign writer) does not
    break the DLQ view: it is shown with the bytes escaped, beside the others."""
    path = tmp_path / "q.db"
    async with Engine(
        EngineConfig(consumers=0, min_consumers=0), broker=f"sqlite:///{path}"
    ) as engine:
        mid = await engine.publish({"n": 1})
        broker = engine.broker
        with sqlite3.connect(path) as conn:
            conn.execute(
                "UPDATE msgs SET state = 3, dseq = 1, mid = CAST(? AS TEXT), "
                "reason = CAST(? AS TEXT), last_error = CAST(? AS TEXT) WHERE mid = ?",
                (b"m\xff", b"r\xfe", b"e\xfd", mid),
            )
        [dead] = broker.dead_letters()
    assert (dead.message_id, dead.reason, dead.last_error) == ("m\\xff", "r\\xfe", "e\\xfd")


async def test_sqlite_rows_of_the_wrong_storage_class_are_dead_lettered(tmp_path: Path) -> None:
    """A foreign writer's row whose body is TEXT, INTEGER or REAL instead of a BLOB, whose
    attempt, priority or publish time is TEXT, or whose id is a BLOB goes to the DLQ as
    `undecodable`; the rest are handled (a TEXT body ended the run with a traceback)."""
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}"
    async with Engine(EngineConfig(consumers=0, min_consumers=0), broker=url) as producer:
        bad = [await producer.publish({"bad": i}) for i in range(7)]
        good = [await producer.publish({"n": i}) for i in range(10)]
    breakages = [
        ("body", '{"n": 1}'),
        ("body", 12345),
        ("body", 1.5),
        ("attempt", "one"),
        ("priority", "high"),
        ("published", "yesterday"),
    ]
    with sqlite3.connect(path) as conn:
        for mid, (column, value) in zip(bad, breakages, strict=False):
            conn.execute(f"UPDATE msgs SET {column} = ? WHERE mid = ?", (value, mid))
        conn.execute("UPDATE msgs SET mid = CAST(mid AS BLOB) WHERE mid = ?", (bad[-1],))
    done, snap, _ = await drain(url)
    assert sorted(done) == sorted(good)
    assert len(snap.dead_letters) == len(bad)
    assert {d.reason for d in snap.dead_letters} == {"undecodable"}
    assert all(isinstance(d.message_id, str) for d in snap.dead_letters)
    assert {d.message_id for d in snap.dead_letters} >= set(bad[:-1])


async def test_sqlite_rows_with_a_foreign_history_fail_and_show(tmp_path: Path) -> None:
    """A row whose delivery history is not ccdash's JSON list (a foreign writer) can still
    be nacked and dead-lettered, and the DLQ view shows it, and a dead row with a TEXT body,
    beside the others (the nack ended the run with a traceback; the view raised)."""
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}"
    histories = ["[[[not json", '{"a": 1}', "[[1, 2]]", '[["t", 1, "x", 2, 3]]', "7"]
    async with Engine(EngineConfig(consumers=0, min_consumers=0), broker=url) as producer:
        mids = [await producer.publish({"fail": i}) for i in range(len(histories))]
        dead_mid = await producer.publish({"dead": 1})
        ok = await producer.publish({"n": 1})
    with sqlite3.connect(path) as conn:
        for mid, history in zip(mids, histories, strict=True):
            conn.execute("UPDATE msgs SET history = ? WHERE mid = ?", (history, mid))
        conn.execute(
            "UPDATE msgs SET state = 3, dseq = 99, body = 'text', history = '{' WHERE mid = ?",
            (dead_mid,),
        )
        conn.execute("UPDATE counters SET ready = ready - 1, dead = dead + 1")
    done: list[str] = []

    async def handler(d: Delivery) -> None:
        if "fail" in d.body:
            raise ValueError("no")
        done.append(d.message_id)

    cfg = EngineConfig(consumers=2, max_attempts=1, seed=1)
    async with Engine(cfg, handler=handler, broker=url) as engine:
        await engine.join(timeout=20)
        dead = {d.message_id: d for d in engine.broker.dead_letters()}
    assert done == [ok]
    assert set(dead) == {*mids, dead_mid}
    assert all(d.reason == REASON_FAILED for mid, d in dead.items() if mid != dead_mid)
    assert [h.error for h in dead[mids[0]].history] == ["ValueError: no"]
    assert dead[dead_mid].body == b"text" and dead[dead_mid].history == ()


async def test_sqlite_rows_inserted_behind_the_counters_are_counted(tmp_path: Path) -> None:
    """Rows a foreign writer inserted straight into the table (its counters untouched)
    do not stop publishing (the next id was taken: every publish failed) and are delivered
    beside ours; one in a state ccdash does not know goes to the DLQ as undecodable."""
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}"
    async with Engine(EngineConfig(consumers=0, min_consumers=0), broker=url) as producer:
        ours = [await producer.publish({"n": i}) for i in range(3)]
    insert = (
        "INSERT INTO msgs (mid, priority, state, body, is_json, published) "
        "VALUES (?, 0, ?, ?, 1, 0.0)"
    )
    with sqlite3.connect(path) as conn:
        conn.execute(insert, ("foreign-1", 0, b'{"f": 1}'))
        conn.execute(insert, ("foreign-2", 0, b'{"f": 2}'))
        conn.execute(insert, ("limbo", 9, b'{"f": 3}'))
    done: list[str] = []

    async def handler(d: Delivery) -> None:
        done.append(d.message_id)

    cfg = EngineConfig(consumers=2, seed=1)
    async with Engine(cfg, handler=handler, broker=url) as engine:
        ours.append(await engine.publish({"n": 3}))
        with sqlite3.connect(path) as conn:  # and one while the file is open
            conn.execute(insert, ("foreign-3", 0, b'{"f": 4}'))
        ours.append(await engine.publish({"n": 4}))
        await engine.join(timeout=20)
        snap = engine.snapshot()
    assert sorted(done) == sorted([*ours, "foreign-1", "foreign-2", "foreign-3"])
    assert [(d.message_id, d.reason) for d in snap.dead_letters] == [("limbo", "undecodable")]
    assert (snap.queue.depth, snap.queue.in_flight, snap.queue.dead) == (0, 0, 1)


async def test_sqlite_delayed_leased_and_dead_rows_with_text_numbers_open(tmp_path: Path) -> None:
    """A delayed, leased or dead row a foreign writer gave a TEXT deadline, attempt or
    priority, or a number for a holder, does not stop the file from opening (the
    deadline scan raised TypeError at open): their numbers are made numbers, the held
    and delayed messages are delivered, the dead one is listed."""
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}"
    async with Engine(EngineConfig(consumers=0, min_consumers=0), broker=url) as producer:
        late, held, dead = [await producer.publish({"n": i}) for i in range(3)]
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE msgs SET state = 1, due = 'later' WHERE mid = ?", (late,))
        conn.execute(
            "UPDATE msgs SET state = 2, due = 'x', attempt = 'z', holder = 5, owner = 'gone' "
            "WHERE mid = ?",
            (held,),
        )
        conn.execute(
            "UPDATE msgs SET state = 3, dseq = 1, due = 'then', priority = 'hi', reason = 'r' "
            "WHERE mid = ?",
            (dead,),
        )
        conn.execute("UPDATE counters SET ready = 0, delayed = 1, leased = 1, dead = 1")
    done: list[str] = []

    async def handler(d: Delivery) -> None:
        done.append(d.message_id)

    async with Engine(EngineConfig(consumers=2, seed=1), handler=handler, broker=url) as engine:
        await engine.join(timeout=20)
        snap = engine.snapshot()
    assert sorted(done) == sorted([late, held])
    assert [(d.message_id, d.priority) for d in snap.dead_letters] == [(dead, 0)]


async def test_sqlite_a_foreign_text_body_is_kept_bounded_in_bytes(tmp_path: Path) -> None:
    """A foreign writer's TEXT body of multi-byte characters is dead-lettered with at
    most RAW_LIMIT bytes of it kept (substr() of TEXT counts characters: 2x over)."""
    path = tmp_path / "q.db"
    url = f"sqlite:///{path}"
    async with Engine(EngineConfig(consumers=0, min_consumers=0), broker=url) as producer:
        mid = await producer.publish({"bad": 1})
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE msgs SET body = ? WHERE mid = ?", ("é" * RAW_LIMIT, mid))

    async def handler(d: Delivery) -> None:
        raise AssertionError(f"{d.message_id} was delivered")

    async with Engine(EngineConfig(consumers=1), handler=handler, broker=url) as engine:
        await engine.join(timeout=20)
        [dead] = engine.snapshot().dead_letters
    assert dead.reason == "undecodable"
    assert isinstance(dead.body, bytes) and len(dead.body) == RAW_LIMIT
    assert dead.body == ("é" * RAW_LIMIT).encode()[:RAW_LIMIT]


async def test_sqlite_a_refresh_reads_only_numeric_deadlines(tmp_path: Path) -> None:
    """The deadline read when another process changed the file (Link.refresh) skips a
    foreign writer's TEXT deadline, as the one at open does: it returned the text,
    which the next comparison with a float raised on."""
    path = tmp_path / "q.db"
    async with Engine(
        EngineConfig(consumers=0, min_consumers=0), broker=f"sqlite:///{path}"
    ) as producer:
        mid = await producer.publish({"n": 1})
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE msgs SET state = 1, due = 'soon' WHERE mid = ?", (mid,))
        assert next_deadline(conn) == float("inf")
