"""Every dashboard key through Pilot, on a seeded engine with a fake clock."""

from __future__ import annotations

import re
from typing import Any

import pytest
from support.dashboard import (
    advance,
    log_text,
    make_app,
    palette_searched,
    quit_app,
    rows,
    running,
    screen_text,
)

from ccdash.tui.app import DashboardApp
from ccdash.tui.consumer_table import ConsumerTable
from ccdash.tui.dead_letters import DeadLetterTable
from ccdash.tui.forecast_line import ForecastLine
from ccdash.tui.header_bar import HeaderBar
from ccdash.tui.help_screen import HelpScreen
from ccdash.tui.keys import KEYS
from ccdash.tui.log_pane import LogPane
from ccdash.tui.message_detail import MessageDetail

SIZE = (160, 48)


def consumer_rows(app: DashboardApp) -> dict[str, list[str]]:
    return rows(app.query_one(ConsumerTable))


def header(app: DashboardApp) -> str:
    return str(app.query_one(HeaderBar).render())


async def dead_letters(app: DashboardApp, pilot: Any, n: int) -> None:
    """Make `n` dead letters (every delivery fails meanwhile); then handlers succeed."""
    app.workload.fail_all = True
    for i in range(n):
        await app.workload.publish({"order": i})
    await advance(app, pilot, 2.0)
    app.workload.fail_all = False


async def test_k_kills_the_selected_consumer_and_a_replacement_appears() -> None:
    """k: the selected consumer fails, a new one takes its place in the table."""
    app = make_app(rate=10)
    async with running(app) as pilot:
        await advance(app, pilot, 1.0)
        assert list(consumer_rows(app)) == ["c1", "c2", "c3"]
        await pilot.press("k")
        assert consumer_rows(app)["c1"][1] == "failed"
        assert "killed c1" in log_text(app)
        await advance(app, pilot, 0.6)  # one health tick: the supervisor replaces it
        table = consumer_rows(app)
        assert "c4" in table and table["c4"][1] in ("idle", "processing")
        assert app.engine.snapshot().live_consumers == 3
        await advance(app, pilot, 7.0)  # the failed one fades, then leaves the table
        assert "c1" not in consumer_rows(app)
        await quit_app(app, pilot)


async def test_h_hangs_the_selected_consumer_until_the_health_check_fails_it() -> None:
    """h: heartbeats stop; after the heartbeat timeout it is failed and replaced."""
    app = make_app(rate=10)
    async with running(app) as pilot:
        await advance(app, pilot, 0.5)
        await pilot.press("h")
        assert "hung c1" in log_text(app)
        assert consumer_rows(app)["c1"][1] == "hung?"
        await advance(app, pilot, 2.5)
        table = consumer_rows(app)
        assert table["c1"][1] == "failed"
        assert "c4" in table
        await quit_app(app, pilot)


async def test_s_slows_the_selected_consumer_by_the_factor_typed() -> None:
    """s: a prompt asks for the factor; the state shows it."""
    app = make_app()
    async with running(app) as pilot:
        await pilot.press("down", "s")
        await pilot.press("backspace", "6", "enter")
        await pilot.pause()
        assert app.engine.consumers["c2"].slow_factor == 6.0
        assert consumer_rows(app)["c2"][1] == "idle x6"
        await quit_app(app, pilot)


async def test_w_sets_the_selected_consumers_weight_and_rejects_nonsense() -> None:
    """w: a prompt for the weight; invalid input is refused with a reason."""
    app = make_app()
    async with running(app) as pilot:
        await pilot.press("w", "backspace", "x", "enter")
        assert "0 to 100" in screen_text(app)
        await pilot.press("backspace", "3", "enter")
        await pilot.pause()
        assert app.engine.consumers["c1"].weight == 3
        assert consumer_rows(app)["c1"][3] == "3"
        await quit_app(app, pilot)


async def test_plus_adds_a_consumer_and_minus_removes_one() -> None:
    """+ / -: the pool grows by one, then shrinks by one."""
    app = make_app()
    async with running(app) as pilot:
        await pilot.press("plus")
        assert list(consumer_rows(app)) == ["c1", "c2", "c3", "c4"]
        assert "consumers 4/4" in header(app)
        await pilot.press("minus", "minus")
        await advance(app, pilot, 0.1)
        assert app.engine.snapshot().live_consumers == 2
        assert "consumers 2/2" in header(app)
        await quit_app(app, pilot)


async def test_b_switches_the_balancer_and_the_header_names_it() -> None:
    """b: pick the next balancer; the header shows it."""
    app = make_app()
    async with running(app) as pilot:
        assert "balancer round-robin" in header(app)
        await pilot.press("b", "down", "enter")
        await pilot.pause()
        assert app.engine.balancer.name == "weighted"
        assert "balancer weighted" in header(app)
        await quit_app(app, pilot)


async def test_a_toggles_the_autoscaler_flag() -> None:
    """a: autoscale on, then off again; the header shows the state."""
    app = make_app()
    async with running(app) as pilot:
        await pilot.press("a")
        assert app.engine.autoscale is True and "autoscale on" in header(app)
        await pilot.press("a")
        assert app.engine.autoscale is False and "autoscale off" in header(app)
        await quit_app(app, pilot)


async def test_a_shows_the_forecast_line_and_the_autoscalers_decisions_in_the_log() -> None:
    """a: the queue pane shows arrivals vs forecast and the last decision; off hides it."""
    app = make_app(rate=30)
    async with running(app) as pilot:
        line = app.query_one(ForecastLine)
        assert not line.display
        await pilot.press("a")
        await advance(app, pilot, 12.0, step=0.1)  # past the 10 s forecast horizon
        assert line.display
        text = screen_text(app)
        decision = app.engine.snapshot().autoscaler.last
        assert decision is not None
        assert re.search(r"arrivals \d+/s vs forecast \d+/s  in 10s \d+/s  last ", text), text
        assert f"({decision.reason})" in str(line.render())
        log = log_text(app)
        assert re.search(r"pool-scaled +pool 3 -> \d+ \(autoscaler: \w+\)", log), log
        assert "scale-held" in log  # the step limit / cooldown held it back at least once
        await pilot.press("a")
        await advance(app, pilot, 0.1)
        assert not line.display and "arrivals" not in screen_text(app)
        await quit_app(app, pilot)


async def test_l_injects_a_burst_that_is_then_processed() -> None:
    """l: a burst is published, shows as depth, and drains."""
    app = make_app(burst_size=30)
    async with running(app) as pilot:
        await pilot.press("l")
        snap = app.engine.snapshot()
        assert snap.published == 30 and snap.queue.depth > 0
        assert "burst of 30" in log_text(app)
        await advance(app, pilot, 3.0)
        assert app.engine.snapshot().acked == 30
        await quit_app(app, pilot)


async def test_p_poison_reaches_the_dlq_after_max_attempts() -> None:
    """p: the poison message is retried, then dead-lettered; the DLQ pane shows it."""
    app = make_app()
    async with running(app) as pilot:
        await pilot.press("p")
        await advance(app, pilot, 2.0)
        dead = rows(app.query_one(DeadLetterTable))
        assert len(dead) == 1
        [row] = dead.values()
        assert row[1] == "failed" and row[2] == str(app.engine.config.max_attempts)
        assert "ValueError: poison message" in row[3]
        await quit_app(app, pilot)


async def test_r_redrives_the_dlq_and_the_message_is_processed() -> None:
    """r (confirmed with y): the DLQ empties and the message is acked."""
    app = make_app()
    async with running(app) as pilot:
        await dead_letters(app, pilot, 1)
        assert app.engine.snapshot().queue.dead == 1
        await pilot.press("r")
        assert "all 1 dead letter?" in screen_text(app)
        await pilot.press("y")
        await advance(app, pilot, 1.0)
        snap = app.engine.snapshot()
        assert snap.queue.dead == 0 and snap.acked == 1
        assert rows(app.query_one(DeadLetterTable)) == {}
        await quit_app(app, pilot)


async def test_r_on_the_focused_dlq_redrives_only_the_selected_message() -> None:
    """r with the DLQ pane focused: just the selected message, no question asked."""
    app = make_app()
    async with running(app) as pilot:
        await dead_letters(app, pilot, 2)
        app.query_one(DeadLetterTable).focus()
        await pilot.press("r")
        await advance(app, pilot, 1.0)
        snap = app.engine.snapshot()
        assert snap.queue.dead == 1 and snap.acked == 1
        await quit_app(app, pilot)


async def test_r_declined_changes_nothing() -> None:
    """r then n: redrive all is cancelled."""
    app = make_app()
    async with running(app) as pilot:
        await pilot.press("p")
        await advance(app, pilot, 2.0)
        await pilot.press("r", "n")
        assert app.engine.snapshot().queue.dead == 1
        assert "redrive cancelled" in log_text(app)
        await quit_app(app, pilot)


async def test_x_purges_after_confirmation() -> None:
    """x then y: dead letters are deleted."""
    app = make_app()
    async with running(app) as pilot:
        await pilot.press("p", "p")
        await advance(app, pilot, 2.0)
        await pilot.press("x", "y")
        await pilot.pause()
        assert app.engine.snapshot().queue.dead == 0
        assert "2 dead letters deleted" in log_text(app)
        await quit_app(app, pilot)


async def test_g_groups_dead_letters_by_error_and_redrives_a_group() -> None:
    """g: a poison wave reads as one line per error; r on it redrives that group."""
    app = make_app()
    async with running(app) as pilot:
        await dead_letters(app, pilot, 4)
        await pilot.press("g")
        grouped = rows(app.query_one(DeadLetterTable))
        assert [r[0] for r in grouped.values()] == ["4"]
        app.query_one(DeadLetterTable).focus()
        await pilot.press("r", "y")
        await advance(app, pilot, 2.0)
        assert app.engine.snapshot().acked == 4
        await quit_app(app, pilot)


async def test_enter_opens_a_dead_letter_with_its_history() -> None:
    """Enter on the DLQ: payload and every failed delivery; Esc closes."""
    app = make_app()
    async with running(app) as pilot:
        await pilot.press("p")
        await advance(app, pilot, 2.0)
        app.query_one(DeadLetterTable).focus()
        await pilot.press("enter")
        assert isinstance(app.screen, MessageDetail)
        text = screen_text(app)
        assert '"poison": true' in text
        assert "3 failed deliveries" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, MessageDetail)
        await quit_app(app, pilot)


async def test_z_pauses_consumption_and_the_backlog_grows_then_resumes() -> None:
    """z: publishing goes on while nothing is handed out; z again drains the backlog."""
    app = make_app(rate=10, latency=0.05)
    async with running(app) as pilot:
        await advance(app, pilot, 1.0)
        await pilot.press("z")
        assert "PAUSED" in header(app)
        await advance(app, pilot, 2.0)
        assert app.engine.snapshot().queue.depth >= 15
        await pilot.press("z")
        await advance(app, pilot, 2.0)
        assert app.engine.snapshot().queue.depth < 5
        assert "PAUSED" not in header(app)
        await quit_app(app, pilot)


async def test_c_acknowledges_the_newest_firing_alert() -> None:
    """c: the firing alert becomes acknowledged."""
    app = make_app()
    async with running(app) as pilot:
        await pilot.press("k")
        await advance(app, pilot, 0.1)
        assert any(a.state == "firing" for a in app.engine.snapshot().alerts)
        await pilot.press("c")
        assert [a.state for a in app.engine.snapshot().alerts][0] == "acknowledged"
        await quit_app(app, pilot)


async def test_d_runs_a_drill_and_the_report_shows_it() -> None:
    """d: pick a drill; it runs against the selected consumer and is reported."""
    app = make_app(rate=10)
    async with running(app) as pilot:
        await advance(app, pilot, 1.0)
        await pilot.press("d", "enter")  # the first drill: kill
        await advance(app, pilot, 1.0)
        [record] = app.workload.drill_results
        assert record.action == "kill" and record.target == "c1"
        report = rows(app.query_one("#drills"))
        assert list(report.values())[0][0] == "kill"
        assert app.engine.snapshot().failovers == 1
        await quit_app(app, pilot)


async def test_t_switches_to_the_next_theme() -> None:
    """t: the next ccdash theme becomes active."""
    app = make_app()
    async with running(app) as pilot:
        first = app.theme
        await pilot.press("t")
        assert app.theme != first and app.theme in app.ccdash_themes
        await quit_app(app, pilot)


async def test_question_mark_opens_the_help_with_every_key() -> None:
    """?: at 80x24 every key and its command fit on the first screen (the panes' digit
    keys as one line), with a hint that details follow; keys do nothing underneath it."""
    app = make_app()
    async with running(app, (80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for k in KEYS:
            if k.id.startswith("view.pane_"):
                continue
            label = k.display or k.key
            assert re.search(rf"{re.escape(label)} {re.escape(k.title.split(': ')[1])}", text)
        assert "1-6 pane; 0 most urgent" in text and "scroll for what each does" in text
        await pilot.press("k")  # not a kill while the help is open
        assert app.engine.snapshot().failovers == 0
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await quit_app(app, pilot)


async def test_v_hides_and_shows_the_log() -> None:
    """v: the log pane goes away and comes back."""
    app = make_app()
    async with running(app) as pilot:
        log = app.query_one(LogPane)
        await pilot.press("v")
        assert not log.display or log.has_class("-hidden")
        await pilot.press("v")
        assert not log.has_class("-hidden")
        await quit_app(app, pilot)


async def test_n_cycles_the_detail_pane_on_a_small_terminal() -> None:
    """n at 80x24: one detail pane at a time (the drill report first), cycling."""
    app = make_app()
    async with running(app, (80, 24)) as pilot:
        assert "Drills" in screen_text(app)
        await pilot.press("n")
        text = screen_text(app)
        assert "Log" in text and "Drills" not in text
        await quit_app(app, pilot)


async def test_q_stops_the_engine_gracefully_with_nothing_lost() -> None:
    """q: handlers finish, leases go back, the app exits 0, every message accounted for."""
    app = make_app(rate=20)
    async with running(app) as pilot:
        await advance(app, pilot, 2.0)
        assert app.engine.snapshot().queue.in_flight > 0
        await quit_app(app, pilot)
    assert app.return_code == 0
    assert not app.engine.running
    snap = app.engine.snapshot()
    assert snap.queue.in_flight == 0
    assert snap.published == snap.acked + snap.queue.dead + app.engine.leftover
    assert all(n == 1 for n in app.workload.completed.values())


async def test_ctrl_c_quits_gracefully_too() -> None:
    """Ctrl+C is q: the engine stops, the app exits 0."""
    app = make_app(rate=10)
    async with running(app) as pilot:
        await advance(app, pilot, 1.0)
        await pilot.press("ctrl+c")
        for _ in range(100):
            if app.engine_worker is not None and app.engine_worker.is_finished:
                break
            await app.clock.advance(0.05)
        await pilot.pause()
    assert app.return_code == 0 and not app.engine.running


async def test_command_palette_runs_a_command_by_name() -> None:
    """Ctrl+P: "consumers: kill selected" kills the selected consumer."""
    app = make_app()
    async with running(app) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"consumers: kill")
        await palette_searched(app, pilot, "consumers: kill")
        await pilot.press("enter")
        await advance(app, pilot, 0.1)
        assert app.engine.snapshot().failovers == 1
        await quit_app(app, pilot)


async def test_an_engine_failure_is_shown_not_swallowed() -> None:
    """A failing workload: a banner says so, the app stays up, q exits 1."""
    app = make_app(rate=10)

    async def broken_run(**_: object) -> None:
        raise RuntimeError("load generator exploded")

    app.workload.run = broken_run
    async with running(app) as pilot:
        await advance(app, pilot, 0.5)
        text = screen_text(app)
        assert "engine failed" in text and "load generator exploded" in text
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 1


async def test_a_tiny_terminal_shows_a_notice_instead_of_panes() -> None:
    """Below 80x24: "terminal too small", no crash; growing brings the panes back."""
    app = make_app()
    async with running(app, (60, 16)) as pilot:
        await advance(app, pilot, 0.5)
        assert "terminal too small" in screen_text(app)
        await pilot.press("k")  # nothing happens to what cannot be seen
        assert app.engine.snapshot().failovers == 0
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        assert "Consumers" in screen_text(app)
        await quit_app(app, pilot)


@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.id)
def test_every_key_is_bound_with_an_id(key: object) -> None:
    """Each command has a binding with its id (so it can be remapped)."""
    ids = {b.id for b in DashboardApp.BINDINGS if hasattr(b, "id")}
    assert key.id in ids  # type: ignore[attr-defined]
