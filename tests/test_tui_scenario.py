"""The dashboard over the real scenario layer (default scenario, fake clock)."""

from __future__ import annotations

from test_tui_support import advance, quit_app, rows, running

from ccdash.clock import FakeClock
from ccdash.scenario import Workload, load_scenario
from ccdash.tui.app import DashboardApp
from ccdash.tui.drill_report import DrillReport


def make_scenario_app() -> DashboardApp:
    clock = FakeClock()
    scenario = load_scenario(None)
    engine = scenario.make_engine(clock=clock, seed=3)
    workload = Workload(scenario, engine, seed=3)
    return DashboardApp(
        engine, workload, clock=clock, live=False, burst_size=50, title=scenario.name
    )


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
        report = rows(app.query_one(DrillReport))
        names = [r[0] for r in report.values()]
        assert names[0].startswith("burst") and names[1].startswith("poison")
        assert names[2].startswith("kill")
        assert list(report.values())[2][5] == "pass"
        await quit_app(app, pilot)
    assert app.return_code == 0
    assert app.workload.report()["lost"] == 0
