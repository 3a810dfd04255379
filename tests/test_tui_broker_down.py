"""The dashboard on a Redis broker that goes away mid-run: the header says so (the
figures on screen are the last ones read), and stops saying so once it is back."""

from __future__ import annotations

from typing import Any

import pytest
from support.dashboard import screen_text
from support.polling import until

from ccdash.scenario import Workload, load_scenario
from ccdash.tui.app import DashboardApp
from ccdash.tui.fleet_feed import FleetFeed

pytestmark = pytest.mark.slow


def _header(app: DashboardApp) -> str:
    return "\n".join(screen_text(app).splitlines()[:2])


async def test_header_says_the_broker_is_unreachable_and_when_it_is_back(
    redis_server_factory: Any,
) -> None:
    """redis-server stopped under the dashboard: within a few seconds the header reads
    `BROKER UNREACHABLE since t+...`; started again, the warning goes within a few
    seconds (the fleet read is retried at most 2 s apart)."""
    server = redis_server_factory()
    scenario = load_scenario(None)
    engine = scenario.make_engine(seed=3, broker=server.url)
    feed = FleetFeed(server.url, engine.broker.worker, poll_every=0.2)  # type: ignore[attr-defined]
    app = DashboardApp(
        engine, Workload(scenario, engine, seed=3), live=False, start_load=False, fleet=feed
    )
    async with app.run_test(size=(160, 48)) as pilot:
        await app.engine_ready.wait()
        await until(lambda: feed.reads > 0, 15, "the first fleet read")
        app.refresh_now()
        await pilot.pause()
        assert "UNREACHABLE" not in _header(app)
        server.stop()

        def header_says(want: bool) -> bool:
            app.refresh_now()
            return ("BROKER UNREACHABLE since t+" in _header(app)) == want

        await until(lambda: header_says(True), 15, "the header to say the broker is gone")
        server.start()
        await until(lambda: header_says(False), 8, "the header to say it no more")
        await pilot.press("q")
        await until(
            lambda: app.engine_worker is not None and app.engine_worker.is_finished,
            15,
            "the engine to stop",
        )
