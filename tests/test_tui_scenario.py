"""The dashboard over the real scenario layer (default scenario, fake clock)."""

from __future__ import annotations

from support.dashboard import advance, log_text, make_scenario_app, quit_app, rows, running

from ccdash.tui.app import DashboardApp
from ccdash.tui.consumer_table import ConsumerTable
from ccdash.tui.drill_report import DrillReport


async def test_keys_drive_the_scenario_workload_and_nothing_is_lost() -> None:
    """l, p and a scenario drill from d run through the Workload; q ends with nothing lost."""
    app = make_scenario_app()
    async with running(app) as pilot:
        await advance(app, pilot, 1.0, step=0.1)
        published = app.engine.snapshot().published
        await pilot.press("l")
        assert app.engine.snapshot().published >= published + 50
        await pilot.press("p")
        await pilot.press("d", "enter")  # the scenario's first drill: kill busiest
        await advance(app, pilot, 2.0, step=0.1)
        report = rows(app.query_one(DrillReport))  # newest first
        names = [r[0] for r in report.values()]
        assert names[2].startswith("burst") and names[1].startswith("poison")
        assert names[0].startswith("kill")
        assert list(report.values())[0][-1] == "pass"
        await quit_app(app, pilot)
    assert app.return_code == 0
    assert app.workload.report()["lost"] == 0


def _rolled(app: DashboardApp) -> bool:
    return any(
        r.action == "rolling-update" and r.verdict != "pending" for r in app.workload.drill_results
    )


async def test_u_rolls_every_consumer_onto_the_demo_v2_handler_under_load() -> None:
    """u: each consumer is replaced by one on v2 (the version column says so); nothing lost."""
    app = make_scenario_app()
    async with running(app) as pilot:
        await advance(app, pilot, 1.0, step=0.1)
        table = app.query_one(ConsumerTable)
        assert {row[2] for row in rows(table).values()} == {"v1"}
        await pilot.press("u")
        assert "rolling update to v2 (the demo's next simulated handler)" in log_text(app)
        await pilot.press("u")  # a second press while it runs is refused, not stacked
        assert "already under way" in log_text(app)
        await app.clock.run_until(lambda: _rolled(app), step=0.1, limit=60)
        await advance(app, pilot, 0.1)
        [rec] = [r for r in app.workload.drill_results if r.action == "rolling-update"]
        assert rec.verdict == "pass" and "v2" in rec.detail
        live = [c for c in app.engine.snapshot().consumers if c.ended_at is None]
        assert len(live) == app.engine.config.consumers
        assert {c.version for c in live} == {"v2"}
        shown = rows(table)
        assert all(shown[c.id][2] == "v2" for c in live)
        assert "rolling update to v2 finished" in log_text(app)
        await quit_app(app, pilot)
    assert app.return_code == 0
    report = app.workload.report()
    assert report["lost"] == 0 and report["duplicates"] == 0
