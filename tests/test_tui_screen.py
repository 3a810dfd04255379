"""The operator's screen at the sizes people use: layout, header, footer, loss count,
newest-first tables, filter, sort, zoom, find, read-only mode and confirmations.

Seeded engines on a fake clock (the app's timers off); the default scenario where the
loss checker matters.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from support.dashboard import (
    FakeWorkload,
    advance,
    log_text,
    make_app,
    make_scenario_app,
    palette_searched,
    quit_app,
    rows,
    running,
    screen_text,
)

from ccdash import Delivery, Engine, EngineConfig
from ccdash.brokers.base import QueueConfig
from ccdash.brokers.memory import MemoryBroker
from ccdash.clock import FakeClock
from ccdash.engine import Severity
from ccdash.tui.alerts_table import shown_order
from ccdash.tui.app import DashboardApp
from ccdash.tui.confirm import Confirm
from ccdash.tui.consumer_table import ConsumerTable
from ccdash.tui.dead_letters import DeadLetterTable
from ccdash.tui.drill_report import DrillReport
from ccdash.tui.fingerprint import fingerprint
from ccdash.tui.header_bar import HeaderBar, fit
from ccdash.tui.keys import KEYS
from ccdash.tui.layout import size_class, urgency
from ccdash.tui.lease_table import LeaseTable
from ccdash.tui.log_pane import LogPane
from ccdash.tui.message_detail import MessageDetail
from ccdash.tui.picker import Picker
from ccdash.tui.prompt import Prompt


def header(app: DashboardApp) -> str:
    return str(app.query_one(HeaderBar).render())


def shown(app: DashboardApp) -> set[str]:
    """The panes on screen now."""
    names = ("queue", "consumers", "alerts", "drills", "dead", "leases", "log")
    return {n for n in names if app.query_one(f"#{n}").display}


async def _kill_drill(app: DashboardApp, pilot: Any) -> None:
    await advance(app, pilot, 1.0, step=0.1)
    await pilot.press("d", "enter")  # the first drill offered: kill the busiest consumer
    await advance(app, pilot, 1.0, step=0.1)


# -- layout ---------------------------------------------------------------------------


def test_size_classes() -> None:
    """80x24 is small, 120x40 medium, 160x45 wide; below 80x24 nothing is drawn."""
    assert size_class(79, 30) == "tiny" and size_class(100, 23) == "tiny"
    assert size_class(80, 24) == "small" and size_class(150, 30) == "small"
    assert size_class(120, 40) == "medium" and size_class(200, 44) == "medium"
    assert size_class(160, 45) == "wide"


def test_the_most_urgent_pane_leads() -> None:
    """A running drill beats a firing alert, which beats a new dead letter; with nothing
    going on, the drill report (it says how to run one) comes first."""
    running_drill = [{"verdict": "pending", "fired_at": 0.0}]
    assert urgency(running_drill, 1, True, 9.0, 3, 10.0)[0] == "drills"
    assert urgency((), 1, True, 9.0, 3, 10.0)[0] == "alerts"
    assert urgency((), 0, True, 9.0, 3, 10.0)[0] == "dead"
    assert urgency((), 0, True, 9.0, 3, 100.0)[0] == "dead"  # old, but still there
    assert urgency((), 0, False, None, 0, 100.0)[0] == "drills"
    old = [{"verdict": "pass", "fired_at": 0.0}]
    assert urgency(old, 1, True, None, 0, 100.0)[0] == "alerts"


@pytest.mark.parametrize(
    ("size", "panes"),
    [
        ((80, 24), {"queue", "consumers", "drills"}),
        ((120, 40), {"queue", "consumers", "drills", "alerts"}),
        ((160, 45), {"queue", "consumers", "drills", "alerts", "dead", "leases", "log"}),
    ],
    ids=["80x24", "120x40", "160x45"],
)
async def test_each_size_shows_the_loss_count_consumers_and_the_drill_verdict(
    size: tuple[int, int], panes: set[str]
) -> None:
    """After a kill drill, without any other key: lost 0 in the header, every consumer
    row, and the drill's verdict with held / recovered / lost are on screen."""
    app = make_scenario_app()
    async with running(app, size) as pilot:
        await _kill_drill(app, pilot)
        assert panes <= shown(app)
        text = screen_text(app)
        assert re.search(r"lost 0\b", text)
        for c in app.engine.snapshot().consumers:
            if c.ended_at is None:
                assert re.search(rf"│ {c.id} ", text), c.id
        assert re.search(r"kill busiest\s+(c\d+\s+)?\d+\s+\d+\s+0\s.*pass", text)
        await quit_app(app, pilot)


async def test_the_consumers_pane_grows_to_show_every_consumer_that_fits() -> None:
    """At 120x40 eight consumers all have a row (not six and a blank pane)."""
    app = make_app(consumers=8)
    async with running(app, (120, 40)) as pilot:
        await advance(app, pilot, 0.5)
        text = screen_text(app)
        assert all(re.search(rf"│ c{i} ", text) for i in range(1, 9))
        await quit_app(app, pilot)


async def test_a_digit_shows_its_pane_and_0_goes_back_to_the_most_urgent() -> None:
    """At 80x24: 3 shows the dead letters, 6 the log, 0 the most urgent pane again."""
    app = make_app()
    async with running(app, (80, 24)) as pilot:
        assert "drills" in shown(app)
        await pilot.press("3")
        assert "dead" in shown(app) and "drills" not in shown(app)
        assert app.focused is app.query_one(DeadLetterTable)
        await pilot.press("6")
        assert "log" in shown(app) and "dead" not in shown(app)
        await pilot.press("0")
        assert "drills" in shown(app)
        await quit_app(app, pilot)


async def test_f_zooms_the_focused_pane_and_back() -> None:
    """f on the consumers: only that pane, every consumer row; f again: the layout."""
    app = make_app(consumers=8)
    async with running(app, (80, 24)) as pilot:
        await advance(app, pilot, 0.5)
        await pilot.press("f")
        assert shown(app) == {"consumers"}
        assert all(re.search(rf"│ c{i} ", screen_text(app)) for i in range(1, 9))
        await pilot.press("f")
        assert {"queue", "consumers", "drills"} <= shown(app)
        await quit_app(app, pilot)


# -- header and footer -------------------------------------------------------------------


def test_fit_drops_whole_fields_least_important_first() -> None:
    """A narrow line keeps the important fields whole and in order."""
    from rich.text import Text

    fields = [(0, Text("lost 0")), (5, Text("broker memory")), (1, Text("consumers 6/6"))]
    assert fit(fields, 40).plain == "lost 0  broker memory  consumers 6/6"
    assert fit(fields, 22).plain == "lost 0  consumers 6/6"
    assert fit(fields, 10).plain == "lost 0"


async def test_at_80_columns_the_footer_shows_the_first_keys_and_the_header_no_cut_number() -> None:
    """80x24: help, quit, kill, drill, pause, filter, zoom and palette in the footer (no
    stray character after it); the header keeps lost, consumers, p50 and p99 whole."""
    app = make_scenario_app()
    async with running(app, (80, 24)) as pilot:
        await advance(app, pilot, 1.0, step=0.1)
        lines = screen_text(app).splitlines()
        footer = lines[-1].rstrip()
        for key in (
            "? help",
            "q quit",
            "k kill",
            "d drill",
            "z pause",
            "/ filter",
            "f zoom",
            "^p palette",
        ):
            assert key in footer
        assert footer.endswith("^p palette")
        top = "\n".join(lines[:2])
        assert "…" not in top
        assert re.search(r"lost 0 ", top) and re.search(r"consumers 6/6", top)
        assert re.search(r"p50 (\d+(\.\d+)?(ms|s)|–) ", top)
        assert re.search(r"p99 (\d+(\.\d+)?(ms|s)|–) ", top)
        await quit_app(app, pilot)


# -- the loss count ------------------------------------------------------------------------


async def test_the_header_shows_the_loss_checkers_count() -> None:
    """lost 0 while everything is accounted for; a dead letter deleted behind the
    engine's back (not an operator's purge) shows as lost 1, as the report says."""
    app = make_scenario_app()
    async with running(app, (120, 40)) as pilot:
        await advance(app, pilot, 1.0, step=0.1)
        await app.workload.inject_poison(1)
        await app.clock.run_until(lambda: app.engine.snapshot().queue.dead >= 1, step=0.1, limit=30)
        await advance(app, pilot, 0.1)
        assert "lost 0" in header(app)
        await app.engine.broker.purge()  # not through the engine: nobody counts it
        await advance(app, pilot, 0.1)
        assert app.workload.lost_now() == 1
        assert "lost 1" in header(app)
        await quit_app(app, pilot)


# -- tables ------------------------------------------------------------------------------------


async def test_dead_letters_alerts_and_log_stay_newest_first_as_they_update() -> None:
    """A second dead letter, a second alert and a new log line go on top at once (alerts
    in the pane's order: firing first, then the most severe, then the newest)."""
    app = make_app(latency=0.05)
    async with running(app, (160, 45)) as pilot:
        await app.workload.inject_poison(1)
        await advance(app, pilot, 2.0)
        await app.workload.inject_poison(1)
        await advance(app, pilot, 2.0)
        dead = app.query_one(DeadLetterTable).row_keys()
        assert len(dead) == 2
        letters = app.engine.snapshot().dead_letters
        assert dead == [d.message_id for d in sorted(letters, key=lambda d: -d.dead_at)]
        await pilot.press("1", "k")
        await advance(app, pilot, 1.0)
        app.consumers.select_key("c2")
        await pilot.press("k")
        await advance(app, pilot, 1.0)
        alerts = shown_order(app.engine.snapshot().alerts)
        keys = app.alerts.row_keys()
        assert len(keys) >= 2 and keys == [str(a.id) for a in alerts]
        log = app.query_one("#log", LogPane)
        top = rows(log)[log.row_keys()[0]]
        assert log_text(app).splitlines()[-1] == " ".join(top)  # the latest line on top
        assert "killed c2" in log_text(app)
        await quit_app(app, pilot)


async def test_alerts_show_firing_then_acknowledged_then_resolved_most_severe_then_newest() -> None:
    """The alerts pane's order, as the help says: firing, then acknowledged, then
    resolved; within each, critical before warning before info, then the newest (by
    when it fired, the time shown) first. `c` with no selection still acknowledges the
    newest firing alert."""
    app = make_app()
    async with running(app, (160, 45)) as pilot:
        book, clock = app.engine.alerts, app.clock

        async def fire(name: str, severity: Severity) -> None:
            book.fire(name, severity, f"{name} fired")
            await clock.advance(1.0)

        for name, severity in [
            ("old-warn", Severity.WARNING),
            ("resolved-late", Severity.INFO),
            ("crit", Severity.CRITICAL),
            ("resolved-early", Severity.INFO),
            ("info", Severity.INFO),
            ("acked", Severity.WARNING),
            ("new-warn", Severity.WARNING),
        ]:
            await fire(name, severity)
        book.resolve("resolved-early")  # resolved first, though it fired later
        await clock.advance(1.0)
        book.resolve("resolved-late")
        acked = next(a for a in app.engine.snapshot().alerts if a.name == "acked")
        assert app.engine.acknowledge_alert(acked.id)
        await advance(app, pilot, 0.1)
        by_id = {str(a.id): a.name for a in app.engine.snapshot().alerts}
        assert [by_id[k] for k in app.alerts.row_keys()] == [
            "crit",
            "new-warn",
            "old-warn",
            "info",
            "acked",
            "resolved-early",
            "resolved-late",
        ]
        help_line = next(k.help for k in KEYS if k.id == "view.pane_alerts")
        assert "firing, then acknowledged, then resolved" in help_line
        await pilot.press("c")  # no alert selected: the newest firing one
        states = {a.name: a.state for a in app.engine.snapshot().alerts}
        assert states["new-warn"] == "acknowledged" and states["crit"] == "firing"
        await quit_app(app, pilot)


async def test_slash_filters_the_focused_table_with_a_match_count() -> None:
    """/ c2 Enter on the consumers: one row, "1 of 3" in the border; / Enter empty: all."""
    app = make_app()
    async with running(app, (80, 24)) as pilot:
        await advance(app, pilot, 0.5)
        await pilot.press("slash")
        assert isinstance(app.screen, Prompt)
        await pilot.press("c", "2", "enter")
        table = app.query_one(ConsumerTable)
        assert table.row_keys() == ["c2"]
        assert "/c2: 1 of 3" in str(table.border_subtitle)
        await pilot.press("slash", "ctrl+u", "enter")
        assert table.row_keys() == ["c1", "c2", "c3"]
        await quit_app(app, pilot)


async def test_o_sorts_the_focused_table_by_column_and_the_cursor_keeps_its_row() -> None:
    """o on the consumers: by id ascending, then descending; the selected consumer stays
    selected wherever it moves."""
    app = make_app()
    async with running(app, (80, 24)) as pilot:
        await advance(app, pilot, 0.5)
        table = app.query_one(ConsumerTable)
        await pilot.press("down")
        assert table.selected_key() == "c2"
        await pilot.press("o")
        assert table.row_keys() == ["c1", "c2", "c3"]
        await pilot.press("o")
        assert table.row_keys() == ["c3", "c2", "c1"]
        assert table.selected_key() == "c2" and table.cursor_row == 1
        await pilot.press("up", "o")  # the third press: back to the natural order
        assert table.row_keys() == ["c1", "c2", "c3"]
        assert table.selected_key() == "c3"
        await quit_app(app, pilot)


async def test_after_a_kill_the_cursor_never_lands_on_another_consumer() -> None:
    """k, k: one kill (the second press finds the killed one selected); once its row
    leaves, nothing is selected and k kills nothing."""
    app = make_app(rate=10)
    async with running(app, (80, 24)) as pilot:
        await advance(app, pilot, 1.0)
        await pilot.press("k", "k")
        assert app.engine.snapshot().failovers == 1
        table = app.query_one(ConsumerTable)
        assert table.selected_key() == "c1"
        await advance(app, pilot, 8.0)  # the failed row fades and leaves
        assert "c1" not in table.row_keys() and table.selected_key() is None
        await pilot.press("k")
        assert app.engine.snapshot().failovers == 1
        assert "select a running consumer" in log_text(app)
        await quit_app(app, pilot)


async def test_lease_bars_measure_time_left_against_the_brokers_lease() -> None:
    """The lease pane draws time left against the visibility timeout the broker leases
    with (the snapshot's), not a copy of the engine's setting."""
    clock = FakeClock()
    cfg = EngineConfig(
        consumers=1, heartbeat_interval=0.5, heartbeat_timeout=1.5, visibility_timeout=10.0
    )
    workload: FakeWorkload

    async def handler(d: Delivery) -> None:
        await workload.handle(d)

    broker = MemoryBroker(QueueConfig(visibility_timeout=40.0), clock=clock)
    engine = Engine(cfg, handler=handler, clock=clock, broker=broker)
    workload = FakeWorkload(engine, clock, rate=0.0, latency=60.0)
    app = DashboardApp(engine, workload, clock=clock, live=False, title="test")
    async with running(app, (160, 45)) as pilot:
        await engine.publish({"n": 1})
        await advance(app, pilot, 12.0, step=0.5)
        table = app.query_one(LeaseTable)
        row = table.raw_row(table.row_keys()[0])
        assert row is not None and row[3] == (7, "28s")  # 28 of 40 s left: 7 of 10 cells
        await quit_app(app, pilot)


# -- find a message ------------------------------------------------------------------------


async def test_colon_finds_a_message_by_id() -> None:
    """: then an id: a dead letter opens with its history; an acked one says so."""
    app = make_app(latency=0.05)
    async with running(app, (120, 40)) as pilot:
        await app.workload.inject_poison(1)
        ok = await app.engine.publish({"n": 99})
        await advance(app, pilot, 2.0)
        [dead] = app.engine.snapshot().dead_letters
        await pilot.press("colon", *dead.message_id, "enter")
        assert isinstance(app.screen, MessageDetail)
        await pilot.press("escape")
        await pilot.press("colon", *ok, "enter")
        assert f"{ok}: " in log_text(app)
        await pilot.press("colon", *"nope", "enter")
        assert "nope: not a message this dashboard has seen" in log_text(app)
        await quit_app(app, pilot)


@pytest.mark.parametrize("size", [(79, 23), (60, 12), (40, 10), (24, 6), (12, 3)])
async def test_the_find_prompt_on_a_screen_too_small_covers_it_and_still_answers(
    size: tuple[int, int],
) -> None:
    """: opened at 80x24, then the terminal shrinks below it: the prompt takes the whole
    screen (nothing of the too-small notice shows through around it), its input line
    stays on screen, and typing an id and Enter still answers."""
    app = make_app(latency=0.05)
    async with running(app, (80, 24)) as pilot:
        ok = await app.engine.publish({"n": 99})
        await advance(app, pilot, 1.0)
        await pilot.press("colon")
        await pilot.resize_terminal(*size)
        await pilot.pause()
        prompt = app.screen
        assert isinstance(prompt, Prompt)
        assert prompt.query_one("#prompt").region == prompt.region
        assert "too small" not in screen_text(app)
        field = prompt.query_one("#prompt-input").region
        assert field.height >= 1 and prompt.region.contains_region(field)
        await pilot.press(*ok, "enter")
        assert app.screen is app.main_screen
        assert f"{ok}: " in log_text(app)  # the answer, in the log (hidden at this size)
        await quit_app(app, pilot)


@pytest.mark.parametrize("dialog", ["picker", "confirm"])
async def test_a_dialog_on_a_screen_too_small_covers_it_and_still_answers(dialog: str) -> None:
    """The drill picker (d) or a confirmation (x: purge the DLQ) open at 80x24, then the
    terminal shrinks to 60x12: the dialog takes the whole screen (nothing of the
    too-small notice around it) and its keys still answer it."""
    app = make_app(latency=0.05)
    async with running(app, (80, 24)) as pilot:
        await app.workload.inject_poison(1)
        await advance(app, pilot, 2.0)
        await pilot.press("d" if dialog == "picker" else "x")
        await pilot.resize_terminal(60, 12)
        await pilot.pause()
        assert isinstance(app.screen, Picker if dialog == "picker" else Confirm)
        assert app.screen.query_one(f"#{dialog}").region == app.screen.region
        assert "too small" not in screen_text(app)
        await pilot.press("enter" if dialog == "picker" else "n")
        assert app.screen is app.main_screen
        if dialog == "picker":
            assert app.workload.drill_results  # the first drill offered ran
        else:
            assert "purge cancelled" in log_text(app)
        await quit_app(app, pilot)


# -- read-only mode and confirmations ------------------------------------------------------

MUTATING = [k for k in KEYS if k.mutating]


@pytest.mark.parametrize("key", MUTATING, ids=lambda k: k.id)
async def test_read_only_refuses_every_mutating_key(key: Any) -> None:
    """--read-only: the key changes nothing, opens no dialog, and one line says why;
    the header says READ-ONLY."""
    app = make_app(read_only=True)
    async with running(app, (120, 40)) as pilot:
        await advance(app, pilot, 0.5)
        before = app.engine.snapshot()
        await pilot.press(key.key)
        await advance(app, pilot, 0.5)
        after = app.engine.snapshot()
        assert app.screen is app.main_screen
        assert "read-only:" in log_text(app) and "refused" in log_text(app)
        assert (
            after.failovers,
            after.published,
            after.paused,
            after.balancer,
            after.autoscale,
            after.desired_consumers,
        ) == (
            before.failovers,
            before.published,
            before.paused,
            before.balancer,
            before.autoscale,
            before.desired_consumers,
        )
        assert not app.workload.drill_results
        assert "READ-ONLY" in header(app)
        await quit_app(app, pilot)


async def test_a_refusal_is_shown_when_the_log_pane_is_not() -> None:
    """80x24 shows one detail pane, not the log: a refused key (any error a command
    meets) still reaches the operator, as a notification, its hostile text neutralised."""
    app = make_app(read_only=True)
    async with running(app, (80, 24)) as pilot:
        await advance(app, pilot, 0.5)
        assert not app.query_one(LogPane).display
        await pilot.press("k")
        await pilot.pause()
        shown = [n.message for n in app._notifications]
        assert any("read-only: kill refused" in m for m in shown), shown
        app.say("evil \x1b[2J[red]markup[/red]", error=True)
        await pilot.pause()
        last = list(app._notifications)[-1]
        assert "\x1b" not in last.message and not last.markup
        await quit_app(app, pilot)


async def test_read_only_refuses_a_palette_command_too() -> None:
    """Ctrl+P "consumers: kill selected" in read-only mode: refused, nothing killed."""
    app = make_app(read_only=True)
    async with running(app) as pilot:
        await pilot.press("ctrl+p", *"consumers: kill")
        await palette_searched(app, pilot, "consumers: kill")
        await pilot.press("enter")
        await advance(app, pilot, 0.2)
        assert app.engine.snapshot().failovers == 0
        assert "read-only: kill refused" in log_text(app)
        await quit_app(app, pilot)


async def test_x_on_one_dead_letter_asks_first() -> None:
    """x with a single dead letter selected: a question; n keeps it, x y deletes it."""
    app = make_app(latency=0.05)
    async with running(app, (160, 45)) as pilot:
        await app.workload.inject_poison(1)
        await advance(app, pilot, 2.0)
        app.dead.focus()
        await pilot.pause()
        await pilot.press("x")
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")
        assert app.engine.snapshot().queue.dead == 1
        await pilot.press("x", "y")
        await advance(app, pilot, 0.1)
        assert app.engine.snapshot().queue.dead == 0
        await quit_app(app, pilot)


class _Worker:
    name = "remote-a"
    concurrency = 2


class _StubFleet:
    """Another worker with one consumer; records the commands sent to it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    async def run(self, say: Any) -> None:
        import asyncio

        await asyncio.Event().wait()

    def consumers(self) -> list[Any]:
        from ccdash.fleet.view import FleetConsumer

        return [("remote-a/c1", FleetConsumer("remote-a", "c1", "idle", 0, 0, 0), 0.1)]

    def leases(self) -> list[Any]:
        return []

    def lease_age(self) -> float | None:
        return None

    def owner(self, key: str | None) -> Any:
        return (_Worker(), "c1") if key == "remote-a/c1" else None

    async def command(self, worker: str, action: str, **args: Any) -> Any:
        self.sent.append((worker, action, args))
        raise __import__("ccdash.tui.fleet_feed", fromlist=["x"]).FleetRefused("test")


@pytest.mark.parametrize("key", ["k", "plus", "minus"])
async def test_actions_on_another_worker_ask_first(key: str) -> None:
    """k, + and - on another worker's consumer: a question first; n sends nothing."""
    fleet = _StubFleet()
    app = make_app(fleet=fleet)
    async with running(app, (120, 40)) as pilot:
        await advance(app, pilot, 0.5)
        assert app.consumers.select_key("remote-a/c1")
        await pilot.press(key)
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")
        await advance(app, pilot, 0.1)
        assert fleet.sent == []
        await pilot.press(key, "y")
        await advance(app, pilot, 0.1)
        await pilot.pause(0.1)
        assert [s[1] for s in fleet.sent] == ["kill" if key == "k" else "scale"]
        await quit_app(app, pilot)


# -- the drill report -------------------------------------------------------------------------


async def test_a_drill_row_shows_held_recovered_and_lost() -> None:
    """A kill drill's row: held n, back n, lost 0 once its verdict is in."""
    app = make_scenario_app()
    async with running(app, (160, 45)) as pilot:
        await _kill_drill(app, pilot)
        [rec] = [r for r in app.workload.drill_results if r.source == "interactive"]
        table = app.query_one(DrillReport)
        row = rows(table)[table.row_keys()[0]]
        assert row[0] == rec.name and row[-1] == "pass"
        assert row[2:5] == [str(len(rec.held)), str(len(rec.held)), "0"]
        await quit_app(app, pilot)


# -- error fingerprints ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "PoisonMessage: poison message m587 always fails",
            "PoisonMessage: poison message m12 always fails",
        ),
        ("ValueError: bad order 123 for 'alice'", "ValueError: bad order 9 for 'bob'"),
        (
            "KeyError: 550e8400-e29b-41d4-a716-446655440000",
            "KeyError: 6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        ),
        ("RuntimeError: object at 0x7f3a2b1c failed", "RuntimeError: object at 0x10 failed"),
        ("TimeoutError: took 12.3s", "TimeoutError: took 4s"),
    ],
)
def test_one_bug_has_one_fingerprint(a: str, b: str) -> None:
    """Ids, numbers, hex, UUIDs and quoted values are masked: both texts match."""
    assert fingerprint(a) == fingerprint(b)


def test_different_errors_keep_different_fingerprints() -> None:
    """The exception type and the words stay."""
    assert fingerprint("ValueError: bad order 1") != fingerprint("KeyError: bad order 1")
    assert fingerprint("ValueError: bad order 1") != fingerprint("ValueError: no stock 1")


async def test_g_groups_the_demo_poison_wave_by_fingerprint() -> None:
    """Poison messages whose errors differ only by message id are one group: count,
    first and last seen, an example; r on it asks first and redrives the whole group."""
    app = make_app(latency=0.05)
    async with running(app, (160, 45)) as pilot:
        for _ in range(3):
            await app.workload.inject_poison(1)  # "poison message <n>": each text differs
            await advance(app, pilot, 1.0)
        await advance(app, pilot, 2.0)
        table = app.query_one(DeadLetterTable)
        assert table.row_count == 3
        await pilot.press("g")
        [(key, row)] = rows(table).items()
        letters = app.engine.snapshot().dead_letters
        assert row[0] == "3" and row[3] == letters[0].message_id  # the newest as example
        assert row[1] != row[2]  # first and last seen
        assert row[4] == "ValueError: poison message <n>"
        table.focus()
        await pilot.press("r")
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await advance(app, pilot, 0.1)
        assert "redrive: 3 dead letters put back" in log_text(app)
        await quit_app(app, pilot)


# -- the palette and themes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "key_id"),
    [
        ("failover", "drills.run"),
        ("failover", "consumers.kill"),
        ("dlq", "dlq.redrive"),
        ("retry", "dlq.redrive"),
        ("dlq delete", "dlq.purge"),
        ("autoscaling", "pool.autoscale"),
    ],
)
def test_operator_words_find_the_command(query: str, key_id: str) -> None:
    """The words an operator would type name the command they mean."""
    from ccdash.tui.commands import word_score

    [key] = [k for k in KEYS if k.id == key_id]
    assert word_score(query, key) > 0
    assert all(word_score("failover", k) == 0 for k in KEYS if k.id.startswith("dlq."))


async def test_the_palette_shows_each_commands_key_and_finds_retry() -> None:
    """Ctrl+P "retry": the redrive command, shown with its key r; Enter runs it (it asks
    first, as r does)."""
    from textual.command import CommandPalette
    from textual.widgets import OptionList

    app = make_app(latency=0.05)
    async with running(app, (120, 40)) as pilot:
        await app.workload.inject_poison(1)
        await advance(app, pilot, 2.0)
        await pilot.press("ctrl+p", *"retry")
        palette = await palette_searched(app, pilot, "retry")
        assert isinstance(palette, CommandPalette)
        options = palette.query_one(OptionList)
        shown = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert any(s.splitlines()[0] == "dlq: redrive  r" for s in shown), shown
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")
        await quit_app(app, pilot)


async def test_the_theme_picker_offers_only_themes_ccdash_accepts() -> None:
    """The palette's theme list is the ccdash themes (each accepted by --theme)."""
    from ccdash.tui.themes import check_theme

    app = make_app()
    async with running(app) as pilot:
        names = set(app.available_themes)
        assert names == set(app.ccdash_themes)
        assert all(check_theme(n) == n for n in names)
        await quit_app(app, pilot)


async def test_on_a_shared_broker_acks_by_other_workers_are_not_a_live_loss() -> None:
    """Messages another worker acked (not through this process's handler) show as lost
    on a private broker, but not on a shared one, where the fleet's acks count."""
    app = make_scenario_app()
    async with running(app, (120, 40)) as pilot:
        await pilot.press("z")  # pause: our consumers take nothing
        await advance(app, pilot, 1.0, step=0.1)
        broker = app.engine.broker
        taken = await broker.receive(["another-worker"])  # someone else's consumer...
        for d in taken:
            await broker.ack(d.receipt)  # ...handles it: our ledger never sees it
        assert taken and app.workload.lost_now() == len(taken)
        app.workload.shared_url = "redis://fleet"  # the same, on a shared broker
        assert app.workload.lost_now() == 0
        await pilot.press("z")
        await quit_app(app, pilot)


async def test_find_says_where_a_message_is_with_its_failed_deliveries() -> None:
    """: on a message that failed once and waits for its retry: "waiting for a retry",
    with that failed delivery (consumer, outcome, error); once in flight: with whom."""
    app = make_app(latency=0.05)
    async with running(app, (120, 40)) as pilot:
        app.workload.fail_all = True  # every delivery fails: the message goes to retry
        mid = await app.engine.publish({"order": 1})
        await app.clock.run_until(
            lambda: (w := app.engine.broker.locate(mid)) is not None and w.state == "delayed",
            step=0.01,
            limit=5,
        )
        await pilot.press("colon", *mid, "enter")
        line = log_text(app).splitlines()[-1]
        assert f"{mid}: waiting for a retry after attempt 1" in line
        assert "attempt 1 on c" in line and "downstream unavailable" in line
        await quit_app(app, pilot)


def test_fake_workload_is_deterministic() -> None:
    """The support workload publishes the same bodies for the same calls."""
    a, b = make_app(), make_app()
    assert a.workload.available_drills() == b.workload.available_drills()


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
async def test_fleet_rows_leave_every_consumer_column_whole(size: tuple[int, int]) -> None:
    """With another worker's consumers shown (a wider id column) the consumers pane
    leaves whole columns out when narrow; the heartbeat column and the p99 figures
    are never cut."""
    app = make_app(fleet=_StubFleet(), rate=20.0, latency=0.2)
    async with running(app, size) as pilot:
        await advance(app, pilot, 2.0, step=0.1)
        table = app.consumers
        assert "remote-a/c1" in table.row_keys()
        lines = [ln for ln in screen_text(app).splitlines() if "│" in ln]
        [header] = [ln for ln in lines if " id " in ln and " state " in ln]
        at = 1 if size[0] == 80 else 3
        cells = [ln.split("│")[at] for ln in lines if len(ln.split("│")) > at]
        assert header.split("│")[at].rstrip().endswith("beat"), header
        p99_at = [k for k, _, _ in table.spec].index("p99")
        for key in table.row_keys():
            if "/" in key:
                continue
            p99 = table.row_text(key)[p99_at]
            [shown] = [c for c in cells if c.startswith(f" {key} ")]
            assert f" {p99} " in shown, (p99, shown)
        await quit_app(app, pilot)
