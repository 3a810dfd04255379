"""Chaos that really loses data: the redis-server under a `ccdash --demo` is killed
mid-run and started again empty (no persistence). ccdash cannot get the messages
back; it must not say all is well: the report counts them lost and fails."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable

import pytest
from support.redis_fixtures import RedisServer

from chaos.books import read_ledger
from chaos.scenario_run import Chaos

pytestmark = pytest.mark.chaos


def test_demo_on_redis_restarted_empty_mid_run_reports_the_loss(
    chaos: Chaos, redis_server_factory: Callable[[], RedisServer]
) -> None:
    """Redis is SIGKILLed mid-run with a backlog and comes back with nothing: the demo
    logs the loss when it reconnects, ends within its bound, no traceback, and its
    report does not vouch for what it cannot: `lost` > 0 and `ok` false (exit 1),
    nothing claimed acked by other workers, the figures adding up."""
    server = redis_server_factory()
    q = chaos.redis_queue(server)
    report_path = chaos.tmp / "report.json"
    demo = chaos.procs.demo(
        "demo", q.url(server.url) + "&ttl=1", report_path, duration=6, CHAOS_DELAY="0.08"
    )
    chaos.wait(lambda: q.entries() >= 30, 20, "a backlog of 30 in Redis")
    server.stop(kill=True)
    for entry in server.dir.iterdir():  # its data is gone: no append-only file to replay
        if entry.name != "redis.log":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    server.start()
    t_back = time.monotonic()
    code = demo.wait_exit(60)
    chaos.row.recover_s = time.monotonic() - t_back
    chaos.row.runs = 1
    chaos.row.duplicates = len(read_ledger(chaos.ledger)) - len(
        {c.mid for c in read_ledger(chaos.ledger)}
    )
    out = demo.stdout()
    assert not chaos.procs.problems(), chaos.procs.problems()
    report = json.loads(report_path.read_text())
    chaos.row.lost = report["lost"]
    assert report["lost"] > 0 and not report["ok"], json.dumps(report, indent=1)[:3000]
    assert code == 1, f"exit {code}\n{out[-2500:]}\n{demo.tail()}"
    # Nothing claimed that did not happen: no other worker acked anything, and the
    # figures add up (a vanished message is lost, not also acked).
    assert report["acked_elsewhere"] == 0, out[-2500:]
    placed = report["acked"] + report["dead_lettered"] + report["still_queued"]
    assert placed + report["lost"] == report["published"], out[-2500:]
    assert "vanished from the queue" in out and "acked by other workers" not in out, out[-2500:]
    assert "Redis lost the queue" in demo.stderr(), demo.tail()  # said when it happened
