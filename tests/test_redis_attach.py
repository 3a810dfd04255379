"""The dashboard and `ccdash --demo` attached to a Redis fleet: the demo joins it as
one more worker and counts what the others acked; the dashboard shows the remote
workers' consumers and steers them through the signed control channel."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.dashboard import log_text, screen_text
from support.fleet import ROOT, SECRET, Fleet, alive_workers, fleet_on
from support.polling import until
from support.redis_fixtures import RedisServer

from ccdash.fleet import FleetView
from ccdash.fleet.connect import connect
from ccdash.fleet.control import SECRET_ENV, SECRET_FILE_ENV
from ccdash.scenario import Workload, load_scenario
from ccdash.tui.app import DashboardApp
from ccdash.tui.fleet_feed import FleetFeed

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(redis_server: RedisServer, tmp_path: Path) -> Iterator[Fleet]:
    yield from fleet_on(redis_server, tmp_path, "attach")


async def test_demo_on_a_fleet_counts_the_other_workers_acks(fleet: Fleet, tmp_path: Path) -> None:
    """`ccdash --demo --broker redis://...` beside a worker: exit 0, nothing lost, and
    the messages the worker handled count as acked (not lost)."""
    fleet.spawn("remote-a", concurrency=4)
    await until(lambda: alive_workers(fleet.url), 15, "the worker to register")
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
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
            "3",
            "--seed",
            "5",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["lost"] == 0 and report["ok"]
    remote = fleet.done()
    assert remote, "the remote worker handled none of the demo's messages"
    # A message both handled (a lease that expired under a slow consumer) is ours.
    assert 0 < report["acked_elsewhere"] <= len(remote)
    assert report["acked"] + report["dead_lettered"] == report["published"]
    assert fleet.stop_all() == {"remote-a": 0}


def _attached_app(url: str) -> DashboardApp:
    """The dashboard on the fleet's queue as one more worker (no load of its own)."""
    scenario = load_scenario(None)
    engine = scenario.make_engine(seed=3, broker=url)
    feed = FleetFeed(url, engine.broker.worker, poll_every=0.2)  # type: ignore[attr-defined]
    return DashboardApp(
        engine, Workload(scenario, engine, seed=3), live=False, start_load=False, fleet=feed
    )


async def _remote_consumers(fv: FleetView, worker: str) -> dict[str, str]:
    snap = await fv.snapshot()
    w = snap.worker(worker)
    return {} if w is None or not w.alive else {c.id: c.state for c in w.consumers}


async def test_dashboard_lists_remote_workers_consumers_and_leases(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer pane shows another worker's consumers as `worker/cid` beside the
    local ones; the header of the pane counts them."""
    fleet.spawn("remote-v", concurrency=2)
    app = _attached_app(fleet.url)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.engine_ready.wait()
        feed = app.fleet
        assert feed is not None
        await until(lambda: len(feed.consumers()) == 2, 15, "the remote consumers")
        app.refresh_now()
        await pilot.pause()
        keys = app.consumers.row_keys()
        assert {"remote-v/c1", "remote-v/c2"} <= set(keys)
        assert any("/" not in k for k in keys), keys  # the local consumers are there too
        text = screen_text(app)
        assert "remote-v/c1" in text and "+ 2 on other workers" in text
        await pilot.press("q")
        await until(
            lambda: app.engine_worker is not None and app.engine_worker.is_finished,
            15,
            "the engine to stop",
        )


async def test_kill_from_the_dashboard_reaches_the_right_worker(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`k` on a remote consumer: refused in the log without a secret; with it, a signed
    kill reaches that worker, whose consumer fails and is replaced; local ones are
    untouched."""
    fleet.spawn("remote-k", concurrency=2)
    fleet.spawn("remote-other", concurrency=2)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    monkeypatch.delenv(SECRET_FILE_ENV, raising=False)
    app = _attached_app(fleet.url)
    async with app.run_test(size=(160, 48)) as pilot, FleetView(fleet.url) as fv:
        await app.engine_ready.wait()
        feed = app.fleet
        assert feed is not None
        await until(lambda: len(feed.consumers()) == 4, 15, "the remote consumers")
        app.refresh_now()
        await pilot.pause()
        app.consumers.focus()
        app.consumers.move_cursor(row=app.consumers.get_row_index("remote-k/c1"))
        await pilot.press("k", "y")  # another worker's consumer: asks first
        await until(lambda: "not sent: no control secret" in log_text(app), 5, "the refusal")
        assert await _remote_consumers(fv, "remote-k") == {"c1": "idle", "c2": "idle"}

        monkeypatch.setenv(SECRET_ENV, SECRET)
        await pilot.press("k", "y")
        await until(
            lambda: "kill on remote-k: killed c1" in log_text(app), 10, "the worker's answer"
        )
        # c1 failed there and the supervisor replaced it; the other worker and the
        # dashboard's own consumers were not touched.
        await until(lambda: _replaced(fv), 10, "c1 to be replaced on remote-k")
        assert set(await _remote_consumers(fv, "remote-other")) == {"c1", "c2"}
        local = app.engine.snapshot()
        assert local.failovers == 0 and all(c.failed == 0 for c in local.consumers)
        await pilot.press("q")
        await until(
            lambda: app.engine_worker is not None and app.engine_worker.is_finished,
            15,
            "the engine to stop",
        )
    assert "killed c1" in fleet.log("remote-k") and "killed" not in fleet.log("remote-other")


async def _replaced(fv: FleetView) -> bool:
    ids = set(await _remote_consumers(fv, "remote-k"))
    return "c1" not in ids and len(ids) == 2


async def test_demo_whose_redis_dies_mid_run_still_reports(
    redis_server_factory: Any, tmp_path: Path
) -> None:
    """Redis (no persistence) is killed mid-run: publishing stops being confirmed, but
    the demo still ends on time with a report that fails the run (exit 1) and counts
    the publishes the broker never took; none of them is in the ledger as accepted."""
    server = redis_server_factory()
    scenario = tmp_path / "outage.toml"
    scenario.write_text(
        '[scenario]\nname = "outage"\nduration = 4\nseed = 3\n'
        "drain_timeout = 2\n\n[engine]\nconsumers = 2\n\n"
        '[load]\nshape = "steady"\nrate = 50\n'
    )
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ccdash",
        "--demo",
        "--scenario",
        str(scenario),
        "--broker",
        f"{server.url}?queue=outage",
        "--json",
        str(out),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    async def publishing() -> bool:  # Redis has taken some of the run's messages
        client, keys = await connect(f"{server.url}?queue=outage")
        try:
            return int(await client.hget(keys.counters, "published") or 0) > 0
        finally:
            await client.aclose()

    await until(publishing, 30, "the demo's first published messages", step=0.1)
    server.stop(kill=True)
    raw_out, raw_err = await asyncio.wait_for(proc.communicate(), 60)
    stdout, stderr = raw_out.decode(), raw_err.decode()
    assert proc.returncode == 1, stdout[-3000:] + stderr[-3000:]
    report = json.loads(out.read_text())
    assert not report["ok"]
    assert report["published"] > 0
    assert report["unconfirmed_publishes"] >= 1
    assert "not confirmed by the broker" in stdout
    assert "Traceback" not in stderr
