"""The dashboard run's operations: /metrics served while it runs, the JSON-lines log,
and a broker / port / log file that cannot be opened ends it at once with the reason."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.dashboard import advance, log_text, make_app, quit_app, running, screen_text
from support.http import http_get

from ccdash.brokers.base import BrokerError
from ccdash.brokers.sqlite import SqliteBroker
from ccdash.clock import FakeClock
from ccdash.ops import OpsError
from ccdash.scenario import Workload, load_scenario
from ccdash.tui.app import DashboardApp


async def test_metrics_are_scraped_while_the_dashboard_runs() -> None:
    """--metrics-port 0: /metrics on 127.0.0.1 parses and its counters match the snapshot."""
    app = make_app(rate=20, metrics_port=0)
    async with running(app) as pilot:
        await pilot.press("p")
        await advance(app, pilot, 2.0)
        assert app.metrics is not None and app.metrics.host == "127.0.0.1"
        port = app.metrics.port
        assert f"serving http://127.0.0.1:{port}/metrics" in log_text(app)
        assert f"metrics 127.0.0.1:{port}" in screen_text(app)  # the header keeps it
        status, body = await http_get(port, "/metrics")
        snap = app.engine.snapshot()
        assert status.endswith("200 OK")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body)
            for s in fam.samples
        }
        assert samples[("ccdash_messages_published_total", ())] == snap.published > 30
        assert samples[("ccdash_messages_acked_total", ())] == snap.acked > 0
        assert samples[("ccdash_dead_letters", ())] == snap.queue.dead == 1
        await quit_app(app, pilot)
    with pytest.raises(OSError):  # the server stopped with the engine
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


async def test_log_file_gets_one_json_line_per_engine_event(tmp_path: Path) -> None:
    """--log-file: JSON lines for the run (start, an operator's kill and its failover, stop)."""
    path = tmp_path / "ops.jsonl"
    app = make_app(rate=10, log_file=str(path))
    async with running(app) as pilot:
        await advance(app, pilot, 0.5)
        await pilot.press("k")
        await advance(app, pilot, 1.0)
        await quit_app(app, pilot)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records and all({"time", "level", "event", "message"} <= set(r) for r in records)
    events = [r["event"] for r in records]
    for kind in ("engine-started", "consumer-failed", "consumer-replaced", "engine-stopped"):
        assert kind in events, events
    [failed] = [r for r in records if r["event"] == "consumer-failed"]
    assert failed["level"] == "error" and failed["consumer"] == "c1"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def _sqlite_app(url: str, **kw: Any) -> DashboardApp:  # kw: DashboardApp's own options
    clock = FakeClock()
    scenario = load_scenario(None)
    engine = scenario.make_engine(clock=clock, seed=3, broker=url)
    return DashboardApp(engine, Workload(scenario, engine, seed=3), clock=clock, live=False, **kw)


async def test_a_broker_that_cannot_open_ends_the_dashboard_with_code_2(tmp_path: Path) -> None:
    """A sqlite file in a missing directory: the app exits at once, the error kept for the CLI."""
    app = _sqlite_app(f"sqlite:///{tmp_path}/no/such/dir/q.db")
    async with app.run_test() as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert app.return_code == 2 and not app.engine_ready.is_set()
    assert isinstance(app.startup_error, BrokerError)
    assert "does not exist" in str(app.startup_error)


async def test_a_metrics_port_in_use_ends_the_dashboard_with_code_2(tmp_path: Path) -> None:
    """--metrics-port on a taken port: exit 2 naming the option; the broker was never opened."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = make_app(metrics_port=port)
        async with app.run_test() as pilot:
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
    assert app.return_code == 2 and isinstance(app.startup_error, OpsError)
    assert str(app.startup_error).startswith(f"--metrics-port: cannot listen on 127.0.0.1:{port}")
    assert not app.engine.running


async def test_the_dashboard_runs_on_a_sqlite_broker_and_loses_nothing(tmp_path: Path) -> None:
    """A sqlite:/// URL: the header names it, the load is handled, q ends with nothing lost."""
    url = f"sqlite:///{tmp_path}/queue.db"
    app = _sqlite_app(url, burst_size=50)
    async with running(app) as pilot:
        await pilot.press("l")
        broker = app.engine.broker
        assert isinstance(broker, SqliteBroker)
        # Fake time moves only once the writer thread has committed what the last step
        # asked of it: under load the thread falls behind a clock that runs free, and
        # leases expire in fake time before their acks reach the file.
        async with asyncio.timeout(60):
            for _ in range(300):
                if app.engine.snapshot().acked >= 50:
                    break
                await app.clock.advance(0.1)
                await broker.settled()
        assert app.engine.snapshot().acked >= 50
        await advance(app, pilot, 0.1)
        assert "broker sqlite:///…" in screen_text(app) and "_s0/queue.db " in screen_text(app)
        await quit_app(app, pilot)
    assert app.return_code == 0 and app.startup_error is None
    assert app.workload.report()["lost"] == 0
    assert (tmp_path / "queue.db").exists()
