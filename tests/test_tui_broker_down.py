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


# Quitting with Redis gone: what is still unsent cannot be sent, so the stop does not
# wait for it (about a second of silence from Redis, not the socket timeouts). The
# bound is loose for a loaded machine; the old code took 12-15 s.
QUIT_WITHIN = 5.0


def _redis_dashboard(server: Any) -> tuple[DashboardApp, FleetFeed]:
    scenario = load_scenario(None)
    engine = scenario.make_engine(seed=3, broker=server.url)
    feed = FleetFeed(server.url, engine.broker.worker, poll_every=0.2)  # type: ignore[attr-defined]
    return DashboardApp(engine, Workload(scenario, engine, seed=3), fleet=feed), feed


def _break(server: Any, how: str) -> None:
    if how == "paused":
        server.freeze()  # SIGSTOP: connections stay open, nothing is answered
    else:
        server.stop()


@pytest.mark.parametrize("how", ["paused", "stopped"])
async def test_q_with_redis_gone_quits_within_seconds(redis_server_factory: Any, how: str) -> None:
    """Redis paused (SIGSTOP) or stopped under a loaded dashboard, then q: the engine
    has stopped and the app can exit within a few seconds (it waited out the
    workload's 5 s for unanswered publishes and the broker's 10 s drain: 15 s)."""
    server = redis_server_factory()
    app, feed = _redis_dashboard(server)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.engine_ready.wait()
        await until(lambda: feed.reads > 0 and app.engine.snapshot().acked > 0, 15, "load")
        _break(server, how)
        await pilot.press("q")
        await until(
            lambda: app.engine_worker is not None and app.engine_worker.is_finished,
            QUIT_WITHIN,
            "the engine to stop with Redis gone",
        )
        assert app.engine_error is None  # unsent work is reported, not a failure
    if how == "paused":
        server.thaw()


async def test_leaving_without_q_with_redis_paused_stops_within_seconds(
    redis_server_factory: Any,
) -> None:
    """The app goes away without q (the engine worker is cancelled) while Redis is
    paused: the engine's stop still ends within a few seconds (it waited 2 s for a
    CLIENT UNBLOCK and 10 s for the write queue to drain: 12 s in the background,
    which a real `ccdash` process waits for before it exits)."""
    server = redis_server_factory()
    app, feed = _redis_dashboard(server)
    async with app.run_test(size=(160, 48)):
        await app.engine_ready.wait()
        await until(lambda: feed.reads > 0 and app.engine.snapshot().acked > 0, 15, "load")
        server.freeze()
        app.exit()
    await until(
        lambda: app.engine_worker is not None and app.engine_worker.is_finished,
        QUIT_WITHIN,
        "the engine to stop with Redis paused",
    )
    assert not app.engine.running
    server.thaw()
