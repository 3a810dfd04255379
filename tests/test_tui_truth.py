"""What the dashboard says is true: the figures it shows mean what their labels say,
and every operator action gets a visible answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.dashboard import (
    advance,
    log_text,
    make_app,
    quit_app,
    rows,
    running,
    screen_text,
)
from support.polling import until
from textual.widgets import Input, Static

from ccdash import Delivery, Engine, EngineConfig
from ccdash.brokers.base import QueueStats
from ccdash.fleet.view import FleetLease, FleetSnapshot, WorkerView
from ccdash.record import parse_recording
from ccdash.tui import format as fmt
from ccdash.tui.app import DashboardApp
from ccdash.tui.confirm import Confirm
from ccdash.tui.dead_letters import DeadLetterTable
from ccdash.tui.drill_report import DrillReport
from ccdash.tui.fleet_feed import FleetFeed
from ccdash.tui.launch import final_line
from ccdash.tui.lease_table import LeaseTable
from ccdash.tui.prompt import Prompt
from ccdash.tui.replay import ReplayApp

GOLDEN = Path(__file__).parent / "data" / "failover-drill.rec"  # a recorded failover drill


async def _done(_: Delivery) -> None:
    return None


async def _fill(url: str, n: int) -> None:
    """A past for the queue at `url`: `n` messages published and acked by another run."""
    async with Engine(EngineConfig(consumers=1), handler=_done, broker=url) as engine:
        for i in range(n):
            await engine.publish(i)
        await engine.join(timeout=10.0)


def _header(app: DashboardApp) -> str:
    app.refresh_now()
    return "\n".join(screen_text(app).splitlines()[:2])


async def test_on_a_queue_with_a_past_the_header_totals_are_this_runs_and_the_lifetime_is_labelled(
    redis_url: str,
) -> None:
    """A Redis queue that 5 messages went through before: after 2 more, the header says
    `published 2  acked 2` (this run's, as on the memory broker) and labels the queue's
    lifetime counters apart (`queue lifetime published 7  acked 7`); so does the line
    printed after `q`."""
    await _fill(redis_url, 5)
    engine = Engine(EngineConfig(consumers=1, shutdown_grace=1.0), handler=_done, broker=redis_url)
    app = DashboardApp(engine, None, live=False, title="test")
    async with running(app, size=(160, 45)) as pilot:
        start = engine.broker.stats()
        for i in range(2):
            await engine.publish(i)
        await engine.join(timeout=10.0)
        await until(lambda: "redelivered" in _header(app), 10, "the totals to show")
        header = _header(app)
        assert "published 2  acked 2" in header, header
        assert "queue lifetime published 7  acked 7" in header, header
        await pilot.press("q")
        worker = app.engine_worker
        assert worker is not None
        await until(lambda: worker.is_finished, 15, "the engine to stop")
    line = final_line(engine.snapshot(), engine.leftover, 0, start)
    assert "stopped. this run published 2, acked 2; queue lifetime: published 7, acked 7," in line


async def test_the_drill_pane_offers_d_only_where_d_runs_a_drill() -> None:
    """With no drill run yet, the drills pane says `d to run one` on a live dashboard, but
    not in a replay or with --read-only, where `d` is refused: there it says `none run
    yet`."""
    live = make_app()
    async with running(live) as pilot:
        assert live.query_one(DrillReport).border_subtitle == "d to run one"
        await quit_app(live, pilot)
    ro = make_app(read_only=True)
    async with running(ro) as pilot:
        assert ro.query_one(DrillReport).border_subtitle == "none run yet"
        await quit_app(ro, pilot)
    replay = ReplayApp(parse_recording(GOLDEN.read_bytes(), "failover.rec"), live=False)
    async with replay.run_test(size=(160, 48)) as pilot:
        await replay.engine_ready.wait()
        await pilot.pause()
        assert replay.query_one(DrillReport).border_subtitle == "none run yet"


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("x" * 3000, "too long: 3000 characters; a message id has at most 200"),
        ("   ", "type a message id (as the panes show it)"),
    ],
)
async def test_find_says_in_one_line_why_it_refuses_an_id(typed: str, said: str) -> None:
    """`:` with a 3,000-character id (or none): the prompt stays and its one error line
    says why (it said only "a message id (as the panes show it)")."""
    app = make_app()
    async with running(app, (80, 24)) as pilot:
        await pilot.press("colon")
        assert isinstance(app.screen, Prompt)
        app.screen.query_one(Input).value = typed
        await pilot.press("enter")
        assert isinstance(app.screen, Prompt)
        error = app.screen.query_one("#prompt-error", Static)
        assert str(error.render()) == said
        assert error.size.height == 1 and len(said) <= error.size.width
        await pilot.press("escape")
        await quit_app(app, pilot)


class _OneWorkerView:
    """A fleet read: worker `wb`, its heartbeat 0.8 s old, holding one 20 s lease."""

    async def snapshot(self) -> FleetSnapshot:
        lease = FleetLease("wb", "m-remote", "c1", 1, 20.0)
        worker = WorkerView(
            "wb", True, "running", beat_age=0.8, consumers=(), leases=(lease,), concurrency=1
        )
        return FleetSnapshot(0.0, QueueStats(0, 0, 1, 0, 1, 0, 0, 0), (worker,), ())

    async def close(self) -> None:
        return None


async def test_other_workers_lease_rows_are_aged_to_now_and_say_how_old_they_are() -> None:
    """Another worker's lease, 20 s left in a heartbeat 0.8 s old read 0.5 s ago, shows
    19 s left (not 20 s: it was up to 2 s staler than the pane's title) and the pane says
    how old the other workers' rows are."""
    t = [100.0]
    view = _OneWorkerView()
    # One read only (the next is a minute away): the test moves the feed's clock itself.
    feed = FleetFeed("redis://127.0.0.1:1/0", "me", view=view, poll_every=60.0)  # type: ignore[arg-type]
    feed.now = lambda: t[0]  # the fleet view's clock
    app = make_app(fleet=feed)
    async with running(app, (160, 45)) as pilot:
        await until(lambda: feed.reads > 0, 5, "the fleet read")
        t[0] += 0.5
        await advance(app, pilot, 0.1)
        [row] = [r for r in rows(app.query_one(LeaseTable)).values() if r[0] == "m-remote"]
        assert row[1:3] == ["wb/c1", "1"] and row[3].endswith(" 19s"), row
        assert "other workers' as of 1.3s ago" in str(app.query_one(LeaseTable).border_subtitle)
        await quit_app(app, pilot)


def test_a_time_since_start_fits_8_cells_however_far_it_is() -> None:
    """`t+17m52s`, then hours (`t+1h40m`) and days (`t-12d03h`, a shared queue's old
    dead letter): never more than the 8 cells the time columns give it."""
    assert fmt.clock_offset(17 * 60 + 52) == "t+17m52s"
    assert fmt.clock_offset(6000) == "t+1h40m"
    assert fmt.clock_offset(-(12 * 86400 + 3 * 3600 + 59)) == "t-12d03h"
    for seconds in (59.9, 5999, 6000, 359_999, 360_000, 8_639_999, -8_639_999, 1e9):
        assert len(fmt.clock_offset(seconds)) <= 8, fmt.clock_offset(seconds)


async def test_an_alert_fired_after_ten_minutes_shows_its_time_whole() -> None:
    """A consumer killed 17m52s into the run: the alerts pane's `when` reads `t+17m52s`,
    not `t+17m5…`."""
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        await advance(app, pilot, 17 * 60 + 52, step=17 * 60 + 52)
        await pilot.press("k")
        await advance(app, pilot, 0.01)
        alerts = [ln for ln in screen_text(app).splitlines() if "c1 failed" in ln]
        assert alerts and "t+17m52s  warning" in alerts[0], alerts
        await quit_app(app, pilot)


@pytest.mark.parametrize("pane", ["leases", "dead"])
async def test_ids_cut_to_their_column_keep_the_end_that_tells_them_apart(pane: str) -> None:
    """Redis message ids share their start (`8966cd992c46-87373`, `...-87374`): cut at
    the end they all read `8966cd992c46-…` in the leases and DLQ panes. The cut goes in
    the middle, so the sequence number stays; a hostile id stays escaped."""
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        table = app.query_one(LeaseTable if pane == "leases" else DeadLetterTable)
        a, b = (table.render_cell("message", f"8966cd992c46-8737{i}").plain for i in (3, 4))
        assert a != b and a.endswith("-87373") and len(a) <= 14, (a, b)
        hostile = table.render_cell("message", "\x1b[2J" + "x" * 3000 + "\u202eend").plain
        assert "\x1b" not in hostile and "\u202e" not in hostile and len(hostile) <= 14
        assert hostile.startswith("\\x1b") and hostile.endswith("end"), hostile
        await quit_app(app, pilot)


async def test_at_80x24_finds_answer_is_shown_whole() -> None:
    """`:` and an id at 80x24: the answer was one log line, and the log is not on screen
    there (nor whole when it is: 45 cells for the message); it shows as a notification
    too, whole and inert."""
    app = make_app(latency=5.0)
    async with running(app, (80, 24)) as pilot:
        mid = await app.engine.publish({"n": 99})
        await advance(app, pilot, 0.5)
        await pilot.press("colon", *mid, "enter")
        await pilot.pause()
        shown = [n.message for n in app._notifications]
        whole = f"{mid}: in flight with c1, attempt 1, lease 9.5s left; no failed delivery"
        assert whole in shown, shown
        await quit_app(app, pilot)


async def test_purge_all_deletes_what_it_asked_about_and_an_empty_dlq_is_said() -> None:
    """x with an empty DLQ asked "Purge all 0 dead letters?"; it says the DLQ is empty.
    x with 1 dead letter asks about 1: one more dead-lettered before the answer is kept
    (the old code deleted both: "all" was counted when asking, taken when answered)."""
    app = make_app(latency=0.05)
    async with running(app, (120, 40)) as pilot:
        await pilot.press("x")
        assert not isinstance(app.screen, Confirm)
        assert "purge: the DLQ is empty" in log_text(app)
        await app.workload.inject_poison(1)
        await advance(app, pilot, 2.0)
        await pilot.press("x")
        assert isinstance(app.screen, Confirm)
        assert "Purge all 1 dead letter?" in screen_text(app)
        await app.workload.inject_poison(1)
        await advance(app, pilot, 2.0)
        assert app.engine.snapshot().queue.dead == 2
        await pilot.press("y")
        await advance(app, pilot, 0.1)
        await pilot.pause(0.1)
        assert app.engine.snapshot().queue.dead == 1
        assert "purge: 1 dead letter deleted" in log_text(app)
        await quit_app(app, pilot)
