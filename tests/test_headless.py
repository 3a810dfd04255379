"""The headless runner's views: plain timestamped lines, and a Rich live view on a terminal."""

from __future__ import annotations

import asyncio
import gc
import io
import re
from collections.abc import Coroutine
from typing import Any

from rich.console import Console

from ccdash.clock import FakeClock
from ccdash.headless.report import plain_report
from ccdash.headless.run import run_demo
from ccdash.headless.views import LiveView, PlainView
from ccdash.scenario import load_scenario


async def drive(clock: FakeClock, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run `coro` to the end, moving the fake clock as it waits."""
    task = asyncio.ensure_future(coro)
    await clock.run_until(task.done, step=0.05)
    return await task


async def test_plain_view_prints_timestamped_lines_then_the_report() -> None:
    """Without a terminal: `[+ secs]` lines for status, drills and failures, then the table."""
    out = io.StringIO()
    clock = FakeClock()
    report = await drive(
        clock, run_demo(load_scenario("failover-drill"), PlainView(out), clock=clock, duration=8)
    )
    text = out.getvalue()
    body, _, table = text.partition("ccdash demo report:")
    lines = body.strip().splitlines()
    assert lines[0].startswith("ccdash --demo: failover-drill (seed 11)")
    stamped = [ln for ln in lines[1:] if ln]
    assert stamped and all(re.match(r"\[\+\s*\d+\.\d\ds\] ", ln) for ln in stamped)
    assert any("drill kill busiest: killed" in ln for ln in stamped)
    assert any("drill hang busiest: PASS (detected after" in ln for ln in stamped)
    assert any("running: published" in ln for ln in stamped)
    assert "drills" in table and "checks" in table and "result: PASS" in table
    assert table.strip() == plain_report(report).removeprefix("ccdash demo report:").strip()


async def test_live_view_draws_progress_and_a_rich_report_on_a_terminal() -> None:
    """On a terminal: a live panel with the run's numbers, then the report as tables."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    clock = FakeClock()
    report = await drive(
        clock, run_demo(load_scenario(None), LiveView(console), clock=clock, duration=3)
    )
    text = buf.getvalue()
    assert "published" in text and "consumers" in text  # the live panel
    assert "drill kill busiest" in text  # drills stay printed above it
    assert "ccdash demo report: default" in text and "PASS" in text
    assert "no_loss (nothing lost)" in text
    assert report["ok"]


async def test_the_text_report_shows_latency_per_priority_for_a_priority_mix() -> None:
    """priority-mix: one latency row per priority (highest first) under the blended one,
    each the JSON's figures; a run with one priority gets none."""
    clock = FakeClock()
    report = await drive(
        clock,
        run_demo(load_scenario("priority-mix"), PlainView(io.StringIO()), clock=clock, duration=4),
    )
    text = plain_report(report)
    by = report["latency_ms_by_priority"]
    assert set(by) == {"0", "5", "9"}
    rows = re.findall(r"priority (\d+)\s+p50 ([\d.]+|-) ", text)
    assert [p for p, _ in rows] == ["9", "5", "0"]
    for prio, p50 in rows:
        assert p50 == ("-" if by[prio]["p50"] is None else f"{by[prio]['p50']:.1f}")
    one = {**report, "latency_ms_by_priority": {"0": by["0"]}}
    assert "priority 0" not in plain_report(one)


async def test_full_collections_of_a_demo_walk_the_objects_made_since_start() -> None:
    """As under the dashboard: the heap as it stands once the engine runs is kept out of
    full garbage collections (gc.freeze) for the run, and handed back when it ends."""
    seen: list[tuple[int, int]] = []

    class Sampling(PlainView):
        def status(self, p: Any) -> None:
            seen.append((gc.get_freeze_count(), len(gc.get_objects())))
            super().status(p)

    clock = FakeClock()
    await drive(
        clock, run_demo(load_scenario(None), Sampling(io.StringIO()), clock=clock, duration=2)
    )
    assert seen
    assert all(frozen > walked for frozen, walked in seen), seen[:3]
    assert gc.get_freeze_count() == 0
