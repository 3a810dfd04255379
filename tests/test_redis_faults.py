"""The Redis broker under faults (#11), on a real redis-server: writes that cannot
succeed, entries that do not decode, pauses of the server, a worker restarted
under its old name. Every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fleet import ROOT, Fleet, fleet_on, has_workers, publish
from support.polling import until
from support.redis_fixtures import RedisServer, lease

from ccdash import Engine, EngineConfig
from ccdash.brokers.base import RAW_LIMIT, Delivery, QueueConfig
from ccdash.brokers.redis import RedisBroker
from ccdash.brokers.redis.keys import Keys
from ccdash.brokers.redis.link import Unsendable
from ccdash.fleet import FleetView
from ccdash.fleet.control import send_raw
from ccdash.fleet.listener import ControlListener
from ccdash.tui.fleet_feed import FleetFeed

Make = Callable[..., Any]


@pytest.fixture
def fleet(redis_server: RedisServer, tmp_path: Path) -> Iterator[Fleet]:
    """Worker processes on a queue of their own; any left running are killed."""
    yield from fleet_on(redis_server, tmp_path, "faults")


async def test_unsendable_command_fails_alone_and_the_batch_goes_on(redis_broker: Make) -> None:
    """A command that cannot be encoded for Redis fails on its own; the ack queued
    beside it reaches Redis and the next writes still flow."""
    broker = await redis_broker()
    await broker.publish(b"a")
    async with asyncio.timeout(10):
        await broker.wait_ready()
        [d] = await broker.receive(["c"])
        bad = broker.flusher.call(("SET", broker.keys.prefix + "x", "f\udcff"))
        broker.ack_nowait(d.receipt)
        with pytest.raises(Unsendable):
            await bad
        await broker.flush()
        await broker.publish(b"b")
        await broker.refresh()
    stats = broker.stats()
    assert (stats.acked, stats.ready) == (1, 1)


async def test_handler_error_with_lone_surrogate_does_not_stop_a_redis_engine(
    redis_url: str,
) -> None:
    """Handlers failing with an undecodable filename in the error text: every other
    message is still acked, the failing ones are dead-lettered with the text escaped,
    and join returns."""

    async def handler(d: Delivery) -> None:
        if d.body["n"] % 10 == 0:
            raise OSError(f"cannot open 'data-{d.body['n']}-\udcff.csv'")

    cfg = EngineConfig(consumers=4, prefetch=2, max_attempts=1, visibility_timeout=10.0, seed=1)
    async with Engine(cfg, handler=handler, broker=redis_url + "&ttl=0.6") as engine:
        for i in range(100):
            await engine.publish({"n": i})
        await engine.join(timeout=20)
        await engine.broker.refresh()  # type: ignore[attr-defined]
        snap = engine.snapshot()
    assert (snap.acked, snap.queue.dead) == (90, 10)
    errors = {dl.last_error for dl in snap.dead_letters}
    assert "OSError: cannot open 'data-0-\\udcff.csv'" in errors


# -- the fleet view ----------------------------------------------------------------


async def _dead_letter_one(url: str) -> str:
    """Publish one message and dead-letter it (max_attempts 1) on the fleet's queue."""
    broker = RedisBroker.from_url(url, QueueConfig(max_attempts=1), worker="dlq-maker")
    await broker.open()
    try:
        mid = await broker.publish({"poison": True})
        async with asyncio.timeout(10):
            await broker.wait_ready()
            [d] = await broker.receive(["c"])
            assert await broker.nack(d.receipt, "boom \x1b[31m") is True
    finally:
        await broker.close()
    return mid


async def test_fleet_view_reads_dead_letters_and_drops_a_sigkilled_worker(fleet: Fleet) -> None:
    """With a dead letter in the shared DLQ the fleet view still reads every worker
    and the DLQ, and a SIGKILLed worker leaves it within about one heartbeat TTL."""
    ttl = 1.0
    mid = await _dead_letter_one(fleet.url)
    for name in ("va", "vb"):
        fleet.spawn(name, ttl=ttl, concurrency=2)
    said: list[str] = []
    feed = FleetFeed(fleet.url, "dashboard", poll_every=0.1)
    task = asyncio.ensure_future(feed.run(lambda msg, err: said.append(msg)))
    try:
        await until(
            lambda: {w.name for w in feed.workers()} == {"va", "vb"}, 20, "both workers in the view"
        )
        snap = feed.snapshot
        assert snap is not None and [d.message_id for d in snap.dead_letters] == [mid]
        assert snap.dead_letters[0].last_error == "boom \\x1b[31m"
        fleet.procs["va"].kill()
        took = await until(
            lambda: {w.name for w in feed.workers()} == {"vb"},
            20,
            "the killed worker to leave the view",
        )
        assert took < ttl + 1.5, f"left the view after {took:.1f}s (TTL {ttl}s)"
        assert said == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert fleet.stop_all()["vb"] == 0


async def test_fleet_view_error_names_the_error_sanitised() -> None:
    """A failed fleet read is reported with the error's type and its (sanitised)
    message, not the type alone."""

    class Broken:
        async def snapshot(self) -> None:
            raise ValueError("reply shape \x1b]52;c;evil\x07 unexpected")

        async def close(self) -> None:
            return None

    said: list[tuple[str, bool]] = []
    feed = FleetFeed(
        "redis://u:sekrit@127.0.0.1:1/0",
        "me",
        view=Broken(),  # type: ignore[arg-type]
        poll_every=0.01,
    )
    task = asyncio.ensure_future(feed.run(lambda msg, err: said.append((msg, err))))
    try:
        await until(lambda: said, 5, "the error report")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    [(msg, error)] = said
    assert error and "ValueError: reply shape \\x1b]52;c;evil\\x07 unexpected" in msg
    assert "sekrit" not in msg and "\x1b" not in msg


# -- presence: pauses and restarts -----------------------------------------------


async def test_no_false_failover_after_redis_is_paused_longer_than_the_ttl(
    redis_server_factory: Any,
) -> None:
    """redis-server SIGSTOPped for three heartbeat TTLs while three workers hold
    leases: once it is back, no worker claims its healthy peers' entries, and every
    lease is still its holder's to ack."""
    server = redis_server_factory()
    ttl = 0.6
    workers = []
    try:
        for i in range(3):
            b = RedisBroker.from_url(
                f"{server.url}?queue=pause&ttl={ttl}&fetch=4&worker=w{i}",
                QueueConfig(visibility_timeout=60.0),
            )
            await b.open()
            await b.presence.register()
            workers.append(b)
        for i in range(30):
            await workers[0].publish({"n": i})
        held = {}
        async with asyncio.timeout(10):
            for b in workers:
                await b.wait_ready()
                held[b] = await b.receive(["c1", "c2", "c3"])
        await asyncio.sleep(1.5 * ttl)  # past every worker's registration grace
        server.freeze()
        await asyncio.sleep(3 * ttl)
        server.thaw()
        await asyncio.sleep(2 * ttl)  # several heartbeat rounds after the pause
        assert [b.presence.claimed for b in workers] == [0, 0, 0]
        async with asyncio.timeout(10):
            for b, ds in held.items():
                assert ds and await b.ack_many([d.receipt for d in ds]) == []
    finally:
        for b in workers:
            await b.close()


async def test_worker_restarted_under_its_name_takes_over_at_once(fleet: Fleet) -> None:
    """A worker SIGKILLed while holding leases and started again at once under the same
    --name is not refused: it takes over its stale heartbeat and its old pending
    entries are handled (long before the 60 s visibility timeout); 0 lost."""
    ttl = 3.0
    fleet.spawn("same", delay=0.3, ttl=ttl, concurrency=4)
    await until(lambda: has_workers(fleet.url, 1), 20, "the worker")
    ids = await publish(fleet.url, 40)
    await until(lambda: len(fleet.done()) >= 4, 20, "some done")
    fleet.procs["same"].kill()
    fleet.procs["same"].wait()
    fleet.spawn("same", delay=0.01, ttl=ttl, concurrency=4, label="same-again")
    await until(lambda: ids <= fleet.done(), 30, "every message handled by the restarted worker")
    assert fleet.procs["same-again"].poll() is None, fleet.log("same-again")
    assert "in use by a live worker" not in fleet.log("same-again")
    assert fleet.stop_all()["same-again"] == 0


async def test_a_live_worker_name_is_still_refused(fleet: Fleet) -> None:
    """A second worker started under the name of one that is alive and beating exits 2
    (within about one heartbeat TTL), and the first keeps running."""
    fleet.spawn("twin", ttl=1.0)
    await until(lambda: has_workers(fleet.url, 1), 20, "the first worker")
    fleet.spawn("twin", ttl=1.0, label="twin-again")
    assert fleet.wait_exit("twin-again", timeout=15) == 2
    assert "in use by a live worker" in fleet.log("twin-again")
    assert fleet.procs["twin"].poll() is None
    assert fleet.stop_all()["twin"] == 0


async def test_name_beating_on_no_other_host_is_taken_over_once_its_heartbeat_lapses(
    redis_url: str, redis_server: RedisServer
) -> None:
    """A heartbeat under our name from another host that does not beat again is taken
    over when it lapses (within one TTL), not refused."""
    ttl = 1.0
    broker = RedisBroker.from_url(f"{redis_url}&ttl={ttl}&worker=ghost", QueueConfig())
    stale = json.dumps({"worker": "ghost", "host": "elsewhere", "pid": 1, "beat": 0})
    redis_server.command("SET", broker.keys.presence("ghost"), stale, "PX", str(int(ttl * 1000)))
    await broker.open()
    try:
        t0 = time.monotonic()
        async with asyncio.timeout(10):
            await broker.presence.register()
        assert time.monotonic() - t0 <= ttl + 0.5
        assert broker.presence.registered
    finally:
        await broker.close()


# -- entries that do not decode ------------------------------------------------------

MALFORMED: dict[str, tuple[str, ...]] = {
    "invalid JSON": ("m", "bad-json", "t", "1", "a", "0", "d", "j{not json"),
    "invalid UTF-8": ("m", "bad-utf8", "t", "1", "a", "0", "d", 'j"\udcff"'),
    "deep nesting": ("m", "deep", "t", "1", "a", "0", "d", "j" + "[" * 200_000 + "]" * 200_000),
    "huge integer": ("m", "bigint", "t", "1", "a", "0", "d", "j" + "9" * 5000),
    # JSON ccdash's encoder never writes (it refuses NaN and infinities): not a value
    "NaN": ("m", "nan", "t", "1", "a", "0", "d", 'j{"n": NaN}'),
    "Infinity": ("m", "inf", "t", "1", "a", "0", "d", "j[-Infinity]"),
    "float out of range": ("m", "1e999", "t", "1", "a", "0", "d", 'j{"n": 1e999}'),
    "no body": ("m", "no-body", "t", "1", "a", "0"),
    "no id": ("t", "1", "a", "0", "d", "j1"),
    "attempts not a number": ("m", "bad-a", "t", "1", "a", "x", "d", "j1"),
}


def raw_command(server: RedisServer, *args: str) -> bytes:
    """One command as a foreign client sends it; a lone surrogate stands for the
    byte it escapes (\\udcff: 0xff), so any bytes can be sent."""
    data = [a.encode("utf-8", "surrogateescape") for a in args]
    payload = b"*%d\r\n" % len(data) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in data)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(payload)
        return s.recv(65536)


def xadd(server: RedisServer, stream: str, fields: tuple[str, ...]) -> None:
    """XADD a raw entry (a foreign writer)."""
    assert raw_command(server, "XADD", stream, "*", *fields)[:1] == b"$", "XADD refused"


async def test_malformed_entries_go_to_the_dlq_and_the_engine_goes_on(
    redis_url: str, redis_server: RedisServer
) -> None:
    """Entries with invalid JSON or UTF-8, deep nesting, a 5,000-digit integer, NaN,
    Infinity, a number past a float's range, or missing/wrong fields are dead-lettered
    at once as `undecodable` with their raw bytes (bounded), an event and an alert;
    every good message is still handled."""
    done: list[int] = []

    async def handler(d: Delivery) -> None:
        done.append(d.body["n"])

    cfg = EngineConfig(consumers=2, prefetch=2, visibility_timeout=10.0, seed=1)
    async with Engine(cfg, handler=handler, broker=redis_url + "&ttl=0.6") as engine:
        stream = engine.broker.keys.stream(0)  # type: ignore[attr-defined]
        for fields in MALFORMED.values():
            xadd(redis_server, stream, fields)
        for i in range(20):
            await engine.publish({"n": i})
        await engine.join(timeout=20)
        await engine.broker.refresh()  # type: ignore[attr-defined]
        snap = engine.snapshot()
        kinds = [e.kind for e in engine.events]
    assert sorted(done) == list(range(20))
    dead = {d.message_id: d for d in snap.dead_letters}
    assert len(dead) == len(MALFORMED) and {d.reason for d in dead.values()} == {"undecodable"}
    assert b"j{not json" in dead["bad-json"].body
    assert len(dead["deep"].body) <= RAW_LIMIT + 1000
    assert all(d.last_error for d in dead.values())
    assert kinds.count("undecodable") == len(MALFORMED)
    assert any(a.name == "undecodable-entry" for a in snap.alerts)


async def test_worker_and_demo_survive_malformed_entries(
    fleet: Fleet, redis_server: RedisServer, tmp_path: Path
) -> None:
    """`ccdash worker` with every kind of malformed entry in its stream keeps running
    and handles the good messages; `ccdash --demo` on that queue finishes with its
    report, no traceback."""
    stream = Keys(fleet.url.rpartition("queue=")[2]).stream(0)
    fleet.spawn("tough", concurrency=2)
    await until(lambda: has_workers(fleet.url, 1), 20, "the worker")
    for fields in MALFORMED.values():
        xadd(redis_server, stream, fields)
    ids = await publish(fleet.url, 20)
    await until(lambda: ids <= fleet.done(), 20, "the good messages handled")
    assert fleet.procs["tough"].poll() is None, fleet.log("tough")
    assert "undecodable entry" in fleet.log("tough")
    for fields in MALFORMED.values():
        xadd(redis_server, stream, fields)
    out = tmp_path / "demo.json"
    proc = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "ccdash",
            "--demo",
            "--broker",
            fleet.url,
            "--duration",
            "1",
            "--seed",
            "3",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode in (0, 1) and json.loads(out.read_text())["lost"] == 0
    assert fleet.stop_all()["tough"] == 0


async def test_malformed_control_entries_do_not_stop_the_control_channel(redis_url: str) -> None:
    """Command entries that are deeply nested, carry a lone surrogate or have no
    fields the channel knows are refused one by one; a signed command after them is
    still obeyed."""
    obeyed: list[str] = []

    async def execute(cmd: dict[str, Any]) -> str:
        obeyed.append(cmd["action"])
        return "ok"

    secret = b"s" * 32
    listener = ControlListener(redis_url, "w1", secret, execute)
    await listener.start()
    task = asyncio.ensure_future(listener.run())
    try:
        for fields in (
            {"c": "[" * 100_000, "s": "x"},
            {"c": '{"nonce": "\\udcff"}', "s": "x"},
            {"junk": "1"},
        ):
            await send_raw(redis_url, "w1", fields)
        async with FleetView(redis_url) as fv:
            result = await fv.command(secret, "w1", "pause", wait=10.0)
        assert result.status == "accepted" and obeyed == ["pause"]
        assert not task.done()
    finally:
        listener.stop()
        await asyncio.wait_for(task, 10)
        await listener.close()


async def test_a_dead_workers_malformed_entry_does_not_stop_its_failover(
    redis_broker: Make, redis_server: RedisServer
) -> None:
    """A dead worker held a foreign entry (no id, a history that is not JSON) beside a
    good message: the survivor's reaper dead-letters the first as `undecodable` and
    hands the good one out, instead of failing every round."""
    survivor = await redis_broker(ttl=0.6, worker="survivor")
    keys = survivor.keys
    good = await survivor.publish({"n": 1})
    xadd(redis_server, keys.stream(0), ("t", "1", "a", "0", "d", "j1", "h", "{not json"))
    await survivor.hand_back()  # the read-ahead goes back: the dead worker reads both
    redis_server.command(
        "XREADGROUP", "GROUP", "ccdash", "ghost", "COUNT", "10", "STREAMS", keys.stream(0), ">"
    )
    redis_server.command("ZADD", keys.workers, "0", "ghost")
    d = await lease(survivor, "c", within=10)
    assert d.message_id == good and d.attempt == 2
    await survivor.refresh()
    [dead] = survivor.dead_letters()
    assert dead.reason == "undecodable" and dead.message_id.startswith("undecodable-")
    assert b"h={not json" in dead.body


async def test_a_foreign_consumer_name_that_is_not_utf8_breaks_no_read(
    redis_broker: Make, redis_server: RedisServer, redis_url: str
) -> None:
    """A foreign client joined the group under a name that is not UTF-8 and holds an
    entry: the broker's fleet counts and the fleet view still read (the name shown
    escaped)."""
    broker = await redis_broker()
    await broker.publish(b"x")
    await broker.hand_back()
    raw_command(
        redis_server,
        "XREADGROUP",
        "GROUP",
        "ccdash",
        "\udcffx",
        "COUNT",
        "1",
        "STREAMS",
        broker.keys.stream(0),
        ">",
    )
    raw_command(redis_server, "ZADD", broker.keys.workers, "0", "\udcffx")
    async with asyncio.timeout(10):
        await broker.refresh()
        await broker.flush()
    assert broker.snap.per_worker == {"\\xffx": 1}
    async with FleetView(redis_url) as fv:
        snap = await fv.snapshot()
    assert snap.queue.in_flight == 1 and [w.name for w in snap.workers] == ["\\xffx"]


async def test_a_refused_publish_batch_does_not_stop_the_heartbeats(
    redis_server_factory: Any,
) -> None:
    """Redis refuses writes for a while (out of memory) while a publish is queued:
    the operations sent beside the refused publish batch still get their answers,
    so once Redis takes writes again the heartbeats go on and the publish lands.
    (An awaited publish is told at once, not stored: test_redis_out_of_memory; one
    queued without a waiter is what is retried here.)"""
    server = redis_server_factory()
    broker = RedisBroker.from_url(f"{server.url}?queue=oom&ttl=0.6&worker=w", QueueConfig())
    await broker.open()
    try:
        await broker.presence.register()
        server.command("CONFIG", "SET", "maxmemory", "1")
        broker.publish_nowait(b"x")
        pending = asyncio.ensure_future(broker.flush())
        await asyncio.sleep(1.0)  # heartbeat rounds and publish retries against the refusal
        assert not pending.done()
        server.command("CONFIG", "SET", "maxmemory", "0")
        async with asyncio.timeout(10):
            await pending
        assert (await lease(broker)).body == b"x"
        key = broker.keys.presence("w")
        await asyncio.sleep(1.0)  # a few heartbeat rounds (a third of the TTL each)

        def beating() -> bool:
            """The key is there: a beat came within the TTL. Polled: a loaded machine
            can hold this loop (and so its beats) past the 0.6 s TTL for a moment;
            beats that stopped for good never bring the key back."""
            reply = server.command("PTTL", key)
            return reply.startswith(b":") and int(reply[1:].split(b"\r")[0]) > 0

        await until(beating, 5, "the heartbeats going on")
    finally:
        await broker.close()


async def test_a_corrupt_queue_structure_does_not_stop_the_reads(
    redis_url: str, redis_server: RedisServer
) -> None:
    """What a foreign writer may leave in the queue's own keys -- a returned-set member
    without its order prefix, a returned or delayed message's hash missing fields, a
    priority level that is no number or has no streams -- never stops the fetch (the
    script failed on every call: 'attempt to perform arithmetic on a nil value', and
    the worker read nothing more); a half message goes to the DLQ as undecodable."""
    done: list[int] = []

    async def handler(d: Delivery) -> None:
        done.append(d.body["n"])

    cfg = EngineConfig(consumers=2, visibility_timeout=10.0, seed=1)
    async with Engine(cfg, handler=handler, broker=redis_url + "&ttl=0.6") as engine:
        p = engine.broker.keys.prefix  # type: ignore[attr-defined]
        for args in (
            ("ZADD", f"{p}ret:0", "0", "no-bar"),
            ("ZADD", f"{p}ret:0", "1", "0001|half"),
            ("HSET", f"{p}rt:half", "m", "half", "p", "0"),
            ("ZADD", f"{p}delayed", "0", "late"),
            ("HSET", f"{p}dl:late", "m", "late"),
            ("ZADD", f"{p}prios", "3", "abc"),
            ("ZADD", f"{p}prios", "1e300", "1e300"),
            ("ZADD", f"{p}prios", "7", "7"),
        ):
            assert not raw_command(redis_server, *args).startswith(b"-"), args
        for i in range(20):
            await engine.publish({"n": i})
        await engine.join(timeout=20)
        await engine.broker.refresh()  # type: ignore[attr-defined]
        snap = engine.snapshot()
    assert sorted(done) == list(range(20))
    dead = {d.message_id: d.reason for d in snap.dead_letters}
    assert dead == {"half": "undecodable", "late": "undecodable"}


async def test_counters_a_foreign_writer_spoilt_do_not_stop_the_queue(
    redis_url: str, redis_server: RedisServer
) -> None:
    """A counter that is no integer (the queue's totals, an acked-entry count) fails no
    open, publish, ack or dead-lettering (HINCRBY refused: every publish failed; the
    stats read raised ValueError, so no process could open the queue); it starts again
    from what this run counts."""
    async with Engine(EngineConfig(consumers=0, min_consumers=0), broker=redis_url) as engine:
        p = engine.broker.keys.prefix  # type: ignore[attr-defined]
        await engine.publish({"n": -1})
    for field in ("published", "acked", "dead_lettered", "redelivered", "dlq_version"):
        assert not raw_command(redis_server, "HSET", f"{p}counters", field, "x1").startswith(b"-")
    for stream in ("q:0", "q:r0"):
        assert not raw_command(redis_server, "HSET", f"{p}ghosts", stream, "x").startswith(b"-")
    done: list[int] = []

    async def handler(d: Delivery) -> None:
        if d.body["n"] % 5 == 0:
            raise ValueError("poison")
        done.append(d.body["n"])

    cfg = EngineConfig(consumers=2, max_attempts=2, backoff_base=0.01, seed=1)
    async with Engine(cfg, handler=handler, broker=redis_url + "&ttl=0.6") as engine:
        for i in range(20):
            await engine.publish({"n": i})
        await engine.join(timeout=20)
        await engine.broker.refresh()  # type: ignore[attr-defined]
        snap = engine.snapshot()
    assert sorted(done) == [i for i in range(-1, 20) if i % 5]
    assert snap.queue.dead == 4 and snap.queue.depth == 0
