"""The SQLite broker against "Contract: queue semantics", on a fake clock.

The queue contract runs on SQLite in tests/test_broker_contract.py (the
`brokers` harness). Here: what only a durable store has (reopen, wall-clock deadlines,
permissions, refusals, other processes on the same file).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis.stateful import invariant
from support.broker_model import (
    BACKOFF,
    CAPACITY,
    DEDUP_WINDOW,
    MAX_ATTEMPTS,
    VT,
    BrokerMachine,
    T,
)

from ccdash import Engine, EngineConfig
from ccdash.brokers import open_broker
from ccdash.brokers.base import (
    REASON_CONSUMER_FAILED,
    REASON_FAILED,
    BrokerError,
    QueueConfig,
    ReceiptRejected,
)
from ccdash.brokers.sqlite import SqliteBroker
from ccdash.brokers.sqlite.schema import SCHEMA_VERSION, SqliteOpenError, parse_url
from ccdash.clock import FakeClock

Make = Callable[..., SqliteBroker]
ROOT = Path(__file__).resolve().parents[1]

# -- durability ------------------------------------------------------------------------


def reopen(path: Path, clock: FakeClock | None = None, **config: Any) -> SqliteBroker:
    """A new broker instance on an existing file (as a restarted process would make)."""
    config.setdefault("seed", 1)
    return SqliteBroker(str(path), QueueConfig(**config), clock=clock or FakeClock())


async def test_every_state_survives_close_and_reopen(tmp_path: Path) -> None:
    """Ready, delayed, dead (with history) and dedup ids are all there after reopening; a
    lease still held at close is handed back unprocessed."""
    path = tmp_path / "q.db"
    first = reopen(path, max_attempts=1, dedup_window=600)
    kept = await first.publish({"n": 1}, priority=-1, dedup_id="k")
    for body in (b"delayed", b"dead", b"held"):
        await first.publish(body)
    delayed, dead, held = await first.receive(["a", "b", "c"])
    await first.defer(delayed.receipt, 3600)
    assert await first.nack(dead.receipt, "boom") is True
    await first.close()

    second = reopen(path, max_attempts=1, dedup_window=600)
    stats = second.stats()
    assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (2, 1, 0, 1)
    assert await second.publish(b"again", dedup_id="k") == kept  # still a duplicate
    [letter] = second.dead_letters()
    assert (letter.message_id, letter.reason, letter.last_error, letter.body) == (
        dead.message_id,
        REASON_FAILED,
        "boom",
        b"dead",
    )
    assert [(h.consumer_id, h.outcome, h.error) for h in letter.history] == [
        ("b", REASON_FAILED, "boom")
    ]
    got = await second.receive(["x", "x", "x"])
    assert [(d.message_id, d.body, d.attempt) for d in got] == [
        (held.message_id, b"held", 1),
        (kept, {"n": 1}, 1),
    ]
    await second.close()


async def test_delayed_retry_keeps_its_wall_clock_due_time(tmp_path: Path) -> None:
    """A retry delayed for 60 s is still delayed after a restart with another clock, then due."""
    path = tmp_path / "q.db"
    first = reopen(path)
    await first.publish(b"x")
    [d] = await first.receive(["a"])
    await first.nack(d.receipt, "later", delay=60)
    await first.close()
    clock = FakeClock(start=5.0)  # a new process: its monotonic clock starts elsewhere
    second = reopen(path, clock)
    assert second.ready_count() == 0
    assert second.stats().delayed == 1
    clock._now += 58
    assert second.ready_count() == 0
    clock._now += 3
    assert second.ready_count() == 1
    [again] = await second.receive(["b"])
    assert (again.message_id, again.attempt) == (d.message_id, 2)
    await second.close()


async def test_a_lease_outlives_its_process_until_its_wall_clock_deadline(tmp_path: Path) -> None:
    """An abandoned lease (its owner still alive, so not reclaimed) runs out on time."""
    path = tmp_path / "q.db"
    first = reopen(path, visibility_timeout=30)
    await first.publish(b"x")
    [d] = await first.receive(["a"])
    # Abandon it without close(): the writer stops, the lease stays in the file.
    first._link.writer.stop()
    await asyncio.to_thread(first._link.writer.join)
    first._read.close()
    clock = FakeClock(start=5.0)
    second = reopen(path, clock, visibility_timeout=30)
    assert second.stats().in_flight == 1
    assert [x.deadline for x in second.leases()] == [pytest.approx(35.0, abs=0.5)]
    clock._now += 29
    assert await second.receive(["b"]) == []
    clock._now += 2
    [again] = await second.receive(["b"])
    assert (again.message_id, again.attempt) == (d.message_id, 2)
    with pytest.raises(ReceiptRejected):
        await second.ack(d.receipt)
    await second.close()


async def test_awaited_publish_is_committed_when_it_returns(tmp_path: Path) -> None:
    """Another connection sees a message as soon as `await publish()` has returned."""
    path = tmp_path / "q.db"
    broker = reopen(path)
    for i in range(5):
        mid = await broker.publish(i)
        other = sqlite3.connect(path)
        assert other.execute("SELECT count(*) FROM msgs WHERE mid = ?", (mid,)).fetchone() == (1,)
        other.close()
    await broker.close()


async def test_concurrent_publishes_and_acks_share_commits(tmp_path: Path) -> None:
    """Group commit: 400 concurrent publishes, then 400 acks, take far fewer transactions."""
    broker = reopen(tmp_path / "q.db")
    await broker.publish(b"warm-up")
    gen0 = broker._link.gen
    await asyncio.gather(*[broker.publish(i) for i in range(400)])
    assert broker._link.gen - gen0 < 100
    deliveries = await broker.receive(["c"] * 401)
    gen1 = broker._link.gen
    await asyncio.gather(*[broker.ack(d.receipt) for d in deliveries])
    assert broker._link.gen - gen1 < 100
    assert broker.stats().acked == 401
    await broker.close()


async def test_publish_nowait_is_committed_by_flush(tmp_path: Path) -> None:
    """publish_nowait returns at once; flush() returns once those messages are on disk."""
    path = tmp_path / "q.db"
    broker = reopen(path)
    ids = [broker.publish_nowait(i) for i in range(50)]
    assert broker.stats().published == 50
    await broker.flush()
    other = sqlite3.connect(path)
    assert other.execute("SELECT count(*) FROM msgs").fetchone() == (50,)
    other.close()
    assert [d.message_id for d in await broker.receive(["c"] * 50)] == ids
    await broker.close()


@pytest.mark.parametrize(("option", "pragma"), [("full", 2), ("normal", 1), ("off", 0)])
async def test_durability_option_sets_synchronous(tmp_path: Path, option: str, pragma: int) -> None:
    """?durability= maps to PRAGMA synchronous on the connections, WAL mode always."""
    broker = open_broker(f"sqlite:///{tmp_path}/q.db?durability={option}", QueueConfig())
    await broker.open()
    assert isinstance(broker, SqliteBroker)
    await broker.publish(b"x")
    store = broker._link.store.conn
    assert store.execute("PRAGMA synchronous").fetchone() == (pragma,)
    assert store.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    await broker.close()


def test_url_forms() -> None:
    """sqlite:///relative and sqlite:////absolute paths; bad options are named."""
    assert parse_url("sqlite:///q.db").path == "q.db"
    assert parse_url("sqlite:////tmp/q.db").path == "/tmp/q.db"
    assert parse_url("sqlite:///q.db?durability=full").durability == "full"
    assert parse_url("sqlite:///q.db").durability == "normal"
    for bad, words in [
        ("sqlite://host/q.db", "host"),
        ("sqlite:///", "needs a file"),
        ("sqlite:///q.db?durability=fast", "durability"),
        ("sqlite:///q.db?mode=x", "unknown option"),
    ]:
        with pytest.raises(SqliteOpenError, match=words):
            parse_url(bad)


# -- files: permissions and refusals -------------------------------------------------------


async def test_files_are_owner_only_under_a_permissive_umask(tmp_path: Path) -> None:
    """The database, -wal and -shm files are created 0600 even with umask 0."""
    path = tmp_path / "q.db"
    old = os.umask(0)
    try:
        broker = reopen(path)
        await broker.open()
        await broker.publish(b"x")
        for name in ("q.db", "q.db-wal", "q.db-shm"):
            mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
            assert mode == 0o600, f"{name} is {oct(mode)}"
        await broker.close()
    finally:
        os.umask(old)


async def refused(url: str) -> str:
    """The one-line error opening this URL gives."""
    broker = open_broker(url, QueueConfig())
    with pytest.raises(BrokerError) as info:
        await broker.open()
    assert isinstance(info.value, SqliteOpenError)
    message = str(info.value)
    assert "\n" not in message
    return message


async def test_missing_directory_is_refused(tmp_path: Path) -> None:
    """A database in a directory that does not exist is refused, naming the directory."""
    message = await refused(f"sqlite:///{tmp_path}/nope/q.db")
    assert f"{tmp_path}/nope" in message and "does not exist" in message


async def test_read_only_file_is_refused(tmp_path: Path) -> None:
    """A database file without write permission is refused (root included), named."""
    path = tmp_path / "q.db"
    broker = reopen(path)
    await broker.publish(b"x")
    await broker.close()
    path.chmod(0o400)
    message = await refused(f"sqlite:///{path}")
    assert str(path) in message and "read-only" in message


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer ccdash (higher user_version) is refused, not touched."""
    path = tmp_path / "q.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    message = await refused(f"sqlite:///{path}")
    assert str(path) in message and f"schema version {SCHEMA_VERSION + 1}" in message


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    """Some other file at the path is refused with a clear message."""
    path = tmp_path / "q.db"
    path.write_bytes(b"this is not sqlite" * 100)
    message = await refused(f"sqlite:///{path}")
    assert str(path) in message and "not a usable database" in message


# -- several brokers (processes) on one file -----------------------------------------------


async def test_holders_of_two_brokers_are_kept_apart(tmp_path: Path) -> None:
    """Two processes both have a consumer c1: releasing one's c1 leaves the other's alone."""
    path = tmp_path / "q.db"
    a, b = reopen(path), reopen(path)
    for i in range(4):
        await a.publish(i)
    await a.receive(["c1", "c1"])
    await b.receive(["c1", "c1"])
    assert a.holder_counts() == {"c1": 2, f"c1@{b.owner}": 2}
    assert await a.release_holder("c1", REASON_CONSUMER_FAILED, "died") == 2
    assert b.holder_counts() == {"c1": 2}
    await a.close()
    await b.close()


async def test_a_parked_consumer_sees_another_process_publish(tmp_path: Path) -> None:
    """wait_ready notices a publish by another process within the re-check interval."""
    path = tmp_path / "q.db"
    consumer, producer = SqliteBroker(str(path)), SqliteBroker(str(path))
    await consumer.open()
    waiter = asyncio.create_task(consumer.wait_ready())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    t0 = time.monotonic()
    await producer.publish(b"x")
    await asyncio.wait_for(waiter, 2.0)
    assert time.monotonic() - t0 < 1.5
    assert [d.body for d in await consumer.receive(["c"])] == [b"x"]
    await consumer.close()
    await producer.close()


async def test_a_held_write_lock_is_waited_out_not_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the write lock longer than the busy timeout only delays us."""
    monkeypatch.setattr("ccdash.brokers.sqlite.schema.BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "q.db"
    broker = SqliteBroker(str(path))
    await broker.open()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    publishing = asyncio.create_task(broker.publish(b"x"))
    late = SqliteBroker(str(path))
    opening = asyncio.create_task(late.open())  # joining the file takes the lock too
    await asyncio.sleep(0.4)  # several busy timeouts pass
    assert not publishing.done() and not opening.done()
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(publishing, 5)
    await asyncio.wait_for(opening, 5)
    assert broker.stats().ready == late.stats().ready == 1
    await broker.close()
    await late.close()


WRITER = """
import asyncio, sys
from ccdash.brokers.base import QueueConfig
from ccdash.brokers.sqlite import SqliteBroker

async def main(path, n):
    broker = SqliteBroker(path, QueueConfig(visibility_timeout=60))
    await broker.open()
    done = 0
    for i in range(n):
        await broker.publish({"i": i})
        if i % 5 == 4:  # receive and ack in small batches, racing the other process
            for d in await broker.receive(["c"] * 5):
                await broker.ack(d.receipt)
                done += 1
    while True:
        got = await broker.receive(["c"] * 50)
        if not got:
            break
        for d in got:
            await broker.ack(d.receipt)
            done += 1
    await broker.close()
    print(done)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_two_processes_writing_at_once_never_see_database_is_locked(tmp_path: Path) -> None:
    """Two processes publishing, receiving and acking on one file both finish, no errors."""
    path = tmp_path / "q.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    await SqliteBroker(str(path)).open()  # create the file first; both then race on it
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(path),
            "400",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    results = [await asyncio.wait_for(p.communicate(), 60) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err.decode()
        assert b"locked" not in err and b"busy" not in err
    assert sum(int(out) for out, _ in results) == 800
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM msgs").fetchone() == (0,)
    assert conn.execute("SELECT published, acked FROM counters").fetchone() == (800, 800)
    conn.close()


# -- the Hypothesis state machine, on SQLite -----------------------------------------------


class SqliteBrokerMachine(BrokerMachine):
    """The memory broker's state machine, unedited rules, on a SqliteBroker.

    Its rules step broker coroutines with `run`, which here drives a private event
    loop (the writer thread hands results back through it); the
    invariants that read the memory broker's private indexes give way to ones
    that check the same things through the public views."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.mkdtemp(prefix="ccdash-sm-")
        config = QueueConfig(
            visibility_timeout=VT,
            max_attempts=MAX_ATTEMPTS,
            capacity=CAPACITY,
            dedup_window=DEDUP_WINDOW,
            seed=7,
            **BACKOFF,  # type: ignore[arg-type]
        )
        self.broker = SqliteBroker(os.path.join(self.tmp, "q.db"), config, clock=self.clock)  # type: ignore[assignment]
        self.loop.run_until_complete(self.broker.open())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a broker coroutine to its end on the machine's event loop."""
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.loop.run_until_complete(self.broker.close())
        self.loop.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    every_message_in_exactly_one_place = None  # type: ignore[assignment]
    leases_match_the_model = None  # type: ignore[assignment]

    @invariant()
    def counts_and_totals_match_the_model(self) -> None:
        stats = self.broker.stats()
        self.reap()
        self.check_counts(stats)

    @invariant()
    def public_leases_match_the_model(self) -> None:
        self.reap()
        want = {m.mid: (m.holder, m.attempt) for m in self.in_state("leased")}
        shown = self.broker.leases()
        assert {x.message_id: (x.consumer_id, x.attempt) for x in shown} == want
        deadlines = {m.mid: m.deadline for m in self.in_state("leased")}
        for x in shown:  # stored as wall-clock times: equal to well under a microsecond
            assert x.deadline == pytest.approx(deadlines[x.message_id], abs=1e-6)
        assert [x.deadline for x in shown] == sorted(x.deadline for x in shown)
        counts: dict[str, int] = {}
        for holder, _ in want.values():
            counts[holder] = counts.get(holder, 0) + 1
        assert self.broker.holder_counts() == counts


SqliteBrokerMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("CCDASH_SM_EXAMPLES", "60")),
    stateful_step_count=40,
    deadline=None,
)
TestSqliteBrokerStateMachine = SqliteBrokerMachine.TestCase


# -- the engine on SQLite -----------------------------------------------------------------
# (The engine tests themselves run on SQLite too: the `engines` fixture, in
# tests/test_engine.py and tests/test_competing_consumer.py.)


async def test_engine_on_a_sqlite_url_runs_and_leaves_an_empty_file(tmp_path: Path) -> None:
    """Engine(broker="sqlite:///...") on the real clock: every message once, nothing left."""
    seen: list[Any] = []

    async def handler(d: Any) -> None:
        seen.append(d.body["i"])

    path = tmp_path / "q.db"
    cfg = EngineConfig(consumers=3, prefetch=8)
    async with Engine(cfg, handler=handler, broker=f"sqlite:///{path}") as engine:
        assert engine.broker.url == f"sqlite:///{path}"
        for i in range(300):
            await engine.publish({"i": i})
        await engine.join(timeout=20)
        snap = engine.snapshot()
    assert sorted(seen) == list(range(300))
    assert snap.published == snap.acked == 300
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM msgs").fetchone() == (0,)
    conn.close()


async def test_engine_stop_leaves_the_backlog_on_disk(tmp_path: Path) -> None:
    """A publish-only engine stops with messages queued; they are in the file afterwards."""
    path = tmp_path / "q.db"
    engine = Engine(EngineConfig(consumers=0, min_consumers=0), broker=f"sqlite:///{path}")
    async with engine:
        ids = [await engine.publish({"i": i}) for i in range(25)]
    assert engine.leftover == 25
    broker = SqliteBroker(str(path))
    got = await broker.receive(["c"] * 30)
    assert [d.message_id for d in got] == ids
    await broker.close()
