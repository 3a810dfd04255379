"""Prometheus metrics over HTTP and the JSON-lines log file."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from support.http import http_get

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock
from ccdash.ops.logfile import JsonLogWriter
from ccdash.ops.prometheus import MetricsServer


async def test_metrics_endpoint_parses_and_matches_snapshot() -> None:
    """/metrics on 127.0.0.1 parses with prometheus-client and its counters match."""

    async def h(d: Delivery) -> None:
        if d.body.get("bad"):
            raise ValueError("nope")

    cfg = EngineConfig(consumers=3, max_attempts=1)
    async with Engine(cfg, handler=h) as engine:
        server = MetricsServer(engine, port=0)
        await server.start()
        try:
            for i in range(50):
                await engine.publish({"i": i, "bad": i % 10 == 0})
            await engine.join(timeout=10)
            await engine.scale_to(4)
            status, body = await http_get(server.port, "/metrics")
            missing, _ = await http_get(server.port, "/nope")
            snap = engine.snapshot()
        finally:
            await server.stop()
    assert status.endswith("200 OK") and missing.endswith("404 Not Found")
    assert server.host == "127.0.0.1"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
    }
    assert samples[("ccdash_messages_published_total", ())] == snap.published == 50
    assert samples[("ccdash_messages_acked_total", ())] == snap.acked == 45
    assert samples[("ccdash_messages_dead_lettered_total", ())] == snap.dead_lettered == 5
    assert samples[("ccdash_dead_letters", ())] == snap.queue.dead
    assert samples[("ccdash_queue_depth", ())] == snap.queue.depth
    assert samples[("ccdash_queue_oldest_ready_age_seconds", ())] == 0.0  # nothing waits
    assert (
        samples[("ccdash_consumers", (("state", "idle"),))]
        + samples[("ccdash_consumers", (("state", "processing"),))]
        == 4
    )
    assert samples[("ccdash_handler_duration_seconds_count", ())] == 50
    assert (
        samples[("ccdash_scaling_decisions_total", (("direction", "up"), ("reason", "operator")))]
        == 1
    )


async def test_log_file_has_json_lines_for_a_failover(tmp_path: Path) -> None:
    """A kill and a hang write valid JSON lines: failures, replacements, alerts; file is 0600."""
    old = os.umask(0)
    try:
        path = tmp_path / "ops.log"
        writer = JsonLogWriter(str(path))
    finally:
        os.umask(old)
    clock = FakeClock()

    async def h(d: Delivery) -> None:
        await clock.sleep(0.1)

    cfg = EngineConfig(consumers=3, heartbeat_interval=0.5, heartbeat_timeout=2.0, seed=1)
    engine = Engine(cfg, handler=h, clock=clock)
    engine.add_listener(writer)
    async with engine:
        for i in range(20):
            await engine.publish({"i": i})
        await engine.kill_consumer(engine.consumer_ids()[0])
        await engine.hang_consumer(engine.consumer_ids()[0])
        await clock.run_until(lambda: engine.failovers == 2)
        await clock.run_until(lambda: engine.snapshot().acked == 20, limit=30)
    writer.close()
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    kinds = [r["event"] for r in records]
    for expected in (
        "engine-started",
        "consumer-failed",
        "consumer-hung",
        "consumer-replaced",
        "alert-firing",
        "alert-resolved",
        "engine-stopped",
    ):
        assert expected in kinds, expected
    assert all({"time", "level", "event", "message"} <= r.keys() for r in records)
    failed = [r for r in records if r["event"] == "consumer-failed"]
    assert all(r["level"] == "error" and "consumer" in r for r in failed)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_expired_lease_is_an_event() -> None:
    """A lease that runs out shows up as a lease-expired event naming message and consumer."""
    clock = FakeClock()

    async def h(d: Delivery) -> None:
        await clock.sleep(1000)

    cfg = EngineConfig(
        consumers=1,
        visibility_timeout=5.0,
        heartbeat_interval=0.5,
        heartbeat_timeout=2.0,
        shutdown_grace=0.1,
    )
    engine = Engine(cfg, handler=h, clock=clock)
    async with engine:
        mid = await engine.publish({"x": 1})
        await clock.advance(0.1)
        await engine.hang_consumer(engine.consumer_ids()[0])  # stops extending its lease
        engine.health.stop()  # and nobody fails it: the lease must run out by itself
        await clock.advance(6.0)
        engine.snapshot()
        expired = [e for e in engine.events if e.kind == "lease-expired"]
        assert expired and dict(expired[0].fields)["message_id"] == mid
        stopper = asyncio.create_task(engine.stop())
        await clock.run_until(stopper.done, limit=10)


def test_log_file_values_are_sanitised(tmp_path: Path) -> None:
    """Outside text in a JSON log line (a handler's error, a message id) goes through the
    sanitiser: `jq -r .message` on the log cannot write an escape to the terminal."""
    from ccdash.engine import Event, EventKind

    path = tmp_path / "ops.log"
    writer = JsonLogWriter(str(path))
    hostile = "boom\x1b]52;c;aGk=\x07\n\u202eevil\x9b2J"
    writer(Event(1, 0.0, EventKind.DEAD_LETTERED, f"m1 dead: {hostile}", (("error", hostile),)))
    writer.close()
    (line,) = path.read_text().splitlines()
    record = json.loads(line)
    for key in ("message", "error"):
        assert record[key].endswith("boom\\x1b]52;c;aGk=\\x07\\x0a\\u202eevil\\x9b2J"), key
        assert all(ch.isprintable() for ch in record[key]), key


def test_log_file_strings_are_bounded_and_cuts_are_marked(tmp_path: Path) -> None:
    """A 10 MB error text and a 1 MB message id (a foreign writer's entry on a shared
    broker) make a log line of a few KB, not 11 MB: each string is cut (ending in …)
    and the record names the fields that were cut; short ones are whole."""
    from ccdash.engine import Event, EventKind

    path = tmp_path / "ops.log"
    writer = JsonLogWriter(str(path))
    huge_error, huge_id = "E" * 10_000_000, "m" * 1_000_000
    fields = (("message_id", huge_id), ("error", huge_error), ("consumer", "c1"))
    writer(Event(1, 0.0, EventKind.DEAD_LETTERED, f"{huge_id} dead: {huge_error}", fields))
    writer.close()
    (line,) = path.read_text().splitlines()
    assert len(line) < 20_000, len(line)
    record = json.loads(line)
    for key in ("message", "message_id", "error"):
        assert record[key].endswith("…") and len(record[key]) < 5_000, key
    assert record["error"].startswith("EEEE") and record["message_id"].startswith("mmmm")
    assert record["consumer"] == "c1"
    assert sorted(record["truncated"]) == ["error", "message", "message_id"]
