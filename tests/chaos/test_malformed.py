"""Chaos from foreign writers: malformed entries injected mid-run into a Redis
queue's stream under real `ccdash worker`s, and undecodable rows into a SQLite
file under a real engine process. Each goes to the DLQ as `undecodable`; no
process crashes, nothing else is lost or dead-lettered."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Sized
from functools import partial

import pytest
from support.redis_fixtures import RedisServer

from chaos.books import Books, read_ids
from chaos.holdings import SqliteFile
from chaos.scenario_run import OPEN_ENDED, Chaos

pytestmark = pytest.mark.chaos

N = 400


# Entry fields as ccdash writes them: m (id), t (ms), d (b"j" + JSON or b"b" + bytes), a.
def _entry(mid: str, data: bytes) -> dict[bytes, bytes]:
    return {b"m": mid.encode(), b"t": b"1700000000000", b"d": data, b"a": b"0"}


DEPTH = 100_000  # far past any JSON parser's recursion limit
BAD_JSON: dict[str, bytes] = {
    "invalid-json": b'{"n": 1,,}',
    "invalid-utf8": b'{"n": "\xff\xfe\xc3"}',
    "deep-nesting": b"[" * DEPTH + b"]" * DEPTH,
    "huge-integer": b"9" * 5000,  # past int()'s 4,300-digit limit
}
MALFORMED: dict[str, dict[bytes, bytes]] = {
    **{kind: _entry(f"bad-{kind}", b"j" + data) for kind, data in BAD_JSON.items()},
    "missing-fields": {b"x": b"1"},
    "wrong-fields": {b"m": b"bad-wrong-fields", b"t": b"soon", b"d": b"j1", b"a": b"many"},
}


def test_malformed_redis_entries_injected_mid_run(chaos: Chaos, redis_server: RedisServer) -> None:
    """Malformed entries of every kind (bad JSON, bad UTF-8, nesting past any parser,
    an integer past int()'s limit, missing and wrong fields) land in the queue stream
    one by one mid-run: each is dead-lettered as `undecodable`, both workers keep
    running between them (exit 0 on SIGTERM, no traceback), 0 lost."""
    q = chaos.redis_queue(redis_server)
    fleet = chaos.redis_fleet(q, redis_server.url, ("m1", "m2"))
    pub = chaos.procs.publisher(q.url(redis_server.url), chaos.published, OPEN_ENDED, rate=300)
    chaos.wait_progress(100)

    def undecodable() -> list[dict[str, bytes]]:
        return [f for f in q.dead() if f.get("r") == b"undecodable"]

    recover = 0.0
    for i, kind in enumerate(MALFORMED, 1):
        q.inject(MALFORMED[kind])
        t_fault = time.monotonic()
        chaos.wait(partial(_has_n, undecodable, i), 10, f"the {kind} entry dead-lettered")
        recover = max(recover, time.monotonic() - t_fault)
        chaos.wait_progress(10)  # the workers go on
    for proc in fleet.values():
        assert proc.alive(), f"{proc.name} died: {proc.tail()}"
    assert pub.stop(signal.SIGTERM, 30) == 0, pub.tail()  # published through every entry
    books = chaos.finish_redis(
        q,
        pub,
        fleet,
        None,
        guilty=lambda: [f["m"].decode(errors="replace") for f in undecodable() if "m" in f],
    )
    chaos.row.note(books, recover, runs=len(MALFORMED))
    books.check(set(), chaos.procs, acked=q.counters().get("acked", 0))
    assert q.entries() == 0 and not q.pending(), "an entry is stuck in the stream"


def _has_n(items: Callable[[], Sized], n: int) -> bool:
    return len(items()) == n


def test_undecodable_sqlite_rows_injected_mid_run(chaos: Chaos) -> None:
    """Rows whose JSON body cannot be decoded are written into the file of a running
    engine: each is dead-lettered as `undecodable`, the engine goes on, 0 lost."""
    db = chaos.tmp / "q.db"
    engine = chaos.procs.sqlite_engine("engine", db, chaos.published, publish=N, rate=300)
    chaos.wait_progress(100)
    f = SqliteFile(db)
    for kind, body in BAD_JSON.items():
        f.inject(f"bad-{kind}", body)
    t_fault = time.monotonic()
    chaos.wait_progress(50)
    bad = {f"bad-{kind}" for kind in BAD_JSON}
    chaos.wait(lambda: set(f.dead_by_id()) >= bad, 10, "the rows dead-lettered")
    recover = time.monotonic() - t_fault
    published = set(read_ids(chaos.published))
    chaos.wait(lambda: len(read_ids(chaos.published)) == N, 30, "the engine published all")
    published = set(read_ids(chaos.published))
    chaos.wait_settled(published, f.dead_by_id, 60, "every published message handled")
    assert engine.stop(signal.SIGTERM, 15) == 0, engine.tail()
    books = Books.of(published, chaos.ledger, f.dead_by_id(), f.queued(), guilty=bad)
    chaos.row.note(books, recover, runs=len(bad))
    books.check(set(), chaos.procs)
    assert {m: r for m, r in f.dead_by_id().items() if m in bad} == dict.fromkeys(
        bad, "undecodable"
    )


def test_demo_on_a_redis_queue_holding_a_malformed_entry(
    chaos: Chaos, redis_server: RedisServer
) -> None:
    """`ccdash --demo` joins a Redis queue whose stream holds a malformed entry: the
    entry is dead-lettered as `undecodable`, the run passes with its own messages all
    handled (exit 0, no traceback), 0 lost."""
    q = chaos.redis_queue(redis_server)
    q.inject(MALFORMED["invalid-json"])
    report_path = chaos.tmp / "report.json"
    demo = chaos.procs.demo("demo", q.url(redis_server.url) + "&ttl=1", report_path, duration=2)
    t0 = time.monotonic()
    code = demo.wait_exit(40)
    took = time.monotonic() - t0
    books = Books.of(
        (),
        chaos.ledger,
        q.dead_by_id(),
        q.queued(),
        guilty=["bad-invalid-json"],
        expected=q.counters().get("published", 0),
    )
    chaos.row.note(books, took, runs=1)
    assert code == 0, f"exit {code}\n{demo.stdout()[-2500:]}\n{demo.tail()}"
    assert q.dead_by_id() == {"bad-invalid-json": "undecodable"}
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["lost"] == 0
    books.check(set(), chaos.procs)
