"""Screen snapshots of the dashboard (seeded engine, fake clock, app timers off).

Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and review the SVGs. Textual is pinned (pyproject) because rendering changes between releases.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_tui_support import advance, make_app

SIZES = [(80, 24), (160, 48)]


async def _busy_minute(pilot: Any) -> None:
    """A few seconds of load, a poison message, a killed consumer and its replacement."""
    app = pilot.app
    await advance(app, pilot, 3.0)
    await app.workload.inject_poison(1)
    await pilot.press("down", "k")
    await advance(app, pilot, 2.0)


def _app() -> Any:
    app = make_app(rate=12, latency=0.2, seed=11)
    return app


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    """The dashboard after load, a poison message and a kill."""
    assert snap_compare(_app(), terminal_size=size, run_before=_busy_minute)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    """The key table over the dashboard."""

    async def open_help(pilot: Any) -> None:
        await _busy_minute(pilot)
        await pilot.press("question_mark")

    assert snap_compare(_app(), terminal_size=size, run_before=open_help)
