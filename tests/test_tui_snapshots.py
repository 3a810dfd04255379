"""Screen snapshots of the dashboard (seeded engine, fake clock, app timers off).

Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and review the SVGs. Textual is pinned (pyproject) because rendering changes between releases.

The three sizes are the layout's size classes (ccdash/tui/layout.py): each must show
the header with the loss count, the consumers, and the drill verdict or the alerts.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.dashboard import advance, make_scenario_app

SIZES = [(80, 24), (120, 40), (160, 45)]


async def _kill_drill(pilot: Any) -> None:
    """The default scenario for a second, then a kill drill from d, Enter, and its verdict."""
    app = pilot.app
    await advance(app, pilot, 1.0, step=0.1)
    await app.workload.inject_poison(1)
    await pilot.press("d", "enter")
    await advance(app, pilot, 1.5, step=0.1)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    """The dashboard after load, a poison message and a kill drill: lost 0 in the header,
    every consumer, the drill's verdict with held / recovered / lost."""
    assert snap_compare(make_scenario_app(), terminal_size=size, run_before=_kill_drill)


@pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    """The key table over the dashboard: every key on the first screen at 80x24."""

    async def open_help(pilot: Any) -> None:
        await _kill_drill(pilot)
        await pilot.press("question_mark")

    assert snap_compare(make_scenario_app(), terminal_size=size, run_before=open_help)
