"""Hostile payloads, errors and ids: shown literally or sanitised, never styled, never fatal."""

from __future__ import annotations

import dataclasses
import unicodedata

from support.dashboard import advance, make_app, quit_app, rows, running, screen_text

from ccdash.brokers.base import DeadLetter, HistoryEntry
from ccdash.engine.alerts import Alert
from ccdash.engine.snapshot import ConsumerView, LeaseView
from ccdash.engine.states import AlertState, Severity
from ccdash.tui.alerts_table import AlertsTable
from ccdash.tui.app import DashboardApp
from ccdash.tui.consumer_table import ConsumerTable
from ccdash.tui.dead_letters import DeadLetterTable
from ccdash.tui.lease_table import LeaseTable
from ccdash.tui.message_detail import MessageDetail

MEGABYTE = "A" * 1_000_000
CORPUS = {
    "markup": "[bold red]x[/]",
    "click": "[@click=app.quit]q",
    "ansi": "\x1b[31mred\x1b[0m",
    "osc52": "\x1b]52;c;aGVsbG8=\x07",
    "bidi": "abc\u202edcba",
    "surrogate": "lone \ud800 here",
    "megabyte": MEGABYTE,
}
# How each one must read on screen (a prefix is enough for the long one).
SHOWN = {
    "markup": "[bold red]x[/]",
    "click": "[@click=app.quit]q",
    "ansi": "\\x1b[31mred\\x1b[0m",
    "osc52": "\\x1b]52;c;aGVsbG8=\\x07",
    "bidi": "abc\\u202edcba",
    "surrogate": "lone \\ud800 here",
    "megabyte": "xxxxxxxxxx",  # its error text; the body itself: see the next test
}


def assert_screen_is_clean(app: DashboardApp) -> str:
    """No control, bidi or surrogate character reached the screen; the SVG export works."""
    text = screen_text(app)
    for line in text.splitlines():
        bad = [ch for ch in line if unicodedata.category(ch) in ("Cc", "Cs", "Cf")]
        assert not bad, f"raw {bad!r} on screen in {line!r}"
    app.export_screenshot()  # would raise on a lone surrogate
    return text


async def test_hostile_payloads_and_errors_read_literally_in_the_dlq_and_its_detail() -> None:
    """Each hostile body and error text dead-letters, lists, opens, and reads as text."""
    app = make_app()
    async with running(app) as pilot:
        ids = {}
        for name, payload in CORPUS.items():
            error = payload if name != "megabyte" else "x" * 5000
            ids[name] = await app.workload.publish(
                {"poison": True, "error": error, "data": payload}
            )
        ids["bytes"] = await app.engine.publish(b"\x1b]52;c;aGVsbG8=\x07\xff")
        await advance(app, pilot, 3.0)
        assert app.engine.snapshot().queue.dead == len(ids)
        text = assert_screen_is_clean(app)
        assert "[bold red]x[/]" in text  # markup not parsed
        assert "[@click=app.quit]q" in text  # not an action
        table = app.query_one(DeadLetterTable)
        table.focus()
        keys = list(rows(table))
        for name, mid in ids.items():
            table.move_cursor(row=keys.index(mid))
            await pilot.press("enter")
            assert isinstance(app.screen, MessageDetail)
            text = assert_screen_is_clean(app)
            if name == "bytes":
                assert "\\x1b]52;c;aGVsbG8=\\x07\\xff" in text
            else:
                assert SHOWN[name] in text.replace("\\u001b", "\\x1b").replace(
                    "\\u0007", "\\x07"
                ), name
            await pilot.press("escape")
        assert app.is_running
        await quit_app(app, pilot)
    assert app.return_code == 0


async def test_the_megabyte_body_is_shown_cut_with_its_size() -> None:
    """A 1 MB payload opens quickly, cut, with its real size stated."""
    app = make_app()
    async with running(app) as pilot:
        await app.workload.publish({"poison": True, "data": MEGABYTE})
        await advance(app, pilot, 2.0)
        app.query_one(DeadLetterTable).focus()
        await pilot.press("enter")
        detail = app.screen
        assert isinstance(detail, MessageDetail)
        body = str(detail.query_one("#detail-body").render())
        assert len(body) < 20_000 and body.rstrip().endswith("…")
        assert "JSON dict" in screen_text(app)
        await pilot.press("escape")
        await quit_app(app, pilot)


async def test_a_dead_letter_nested_980_deep_opens_and_the_dashboard_lives() -> None:
    """A body nested 980 deep (a foreign writer's: the C decoder takes it where the
    consumer reads it) in the detail view: the start of its JSON is shown; the pretty
    printer's RecursionError (a Python frame a level) took the dashboard down."""
    data: list[object] = []
    for _ in range(980):
        data = [data]
    app = make_app()
    async with running(app, (120, 40)) as pilot:
        letter = DeadLetter("m1", "failed", 1, "boom", 0, data, app.t0, ())
        app.push_screen(MessageDetail(letter, app.palette, app.t0))
        await pilot.pause()
        assert isinstance(app.screen, MessageDetail)
        assert "[[[[" in str(app.screen.query_one("#detail-body").render())
        await pilot.press("escape")
        assert app.is_running
        await quit_app(app, pilot)
    assert app.return_code == 0


async def test_hostile_ids_in_the_leases_consumers_and_alerts_panes() -> None:
    """Hostile message and consumer ids and alert texts: literal, unstyled, clickable safely."""
    app = make_app()
    async with running(app) as pilot:
        real = app.engine.snapshot()
        for name, payload in CORPUS.items():
            hostile = dataclasses.replace(
                real,
                leases=(LeaseView(payload, payload, 2, 5.0),),
                consumers=(ConsumerView(payload, "processing", 1, 1, 3, 0, 0.01, 0.02, 0.1),),
                alerts=(
                    Alert(1, "x", payload, Severity.WARNING, payload, AlertState.FIRING, real.at),
                ),
                dead_letters=(
                    DeadLetter(
                        payload,
                        "failed",
                        3,
                        payload,
                        0,
                        payload,
                        real.at,
                        (HistoryEntry(real.at, payload, 1, "failed", payload),),
                    ),
                ),
            )
            app.query_one(LeaseTable).update_from(hostile)
            app.query_one("#consumers", ConsumerTable).update_from(hostile)
            app.query_one("#alerts", AlertsTable).update_from(hostile)
            app.query_one(DeadLetterTable).update_from(hostile)
            await pilot.pause()
            text = assert_screen_is_clean(app)
            shown = "AAAAAAAAAA" if name == "megabyte" else SHOWN[name]
            assert shown[:6] in text, name
            lease = next(iter(rows(app.query_one(LeaseTable)).values()))
            assert lease[0].startswith(shown[:6]) and lease[1].startswith(shown[:3]), name
            await pilot.click(LeaseTable, offset=(3, 1))  # a "[@click=...]" id does nothing
            await pilot.click("#consumers", offset=(3, 1))
            await pilot.pause()
            assert app.is_running, name
        await quit_app(app, pilot)


async def test_the_delivery_history_names_a_fleet_consumer_in_full() -> None:
    """On Redis a delivery's consumer is `worker/cid`, the worker named host-pid-tag:
    the history shows all of it, not the host's name cut before the consumer."""
    app = make_app()
    async with running(app, (120, 40)) as pilot:
        who = "build-host-01-48213-9b5c/c3"
        letter = DeadLetter(
            "m1",
            "failed",
            1,
            "boom",
            0,
            {"n": 1},
            app.t0,
            (HistoryEntry(app.t0, who, 1, "failed", "boom"),),
        )
        app.push_screen(MessageDetail(letter, app.palette, app.t0))
        await pilot.pause()
        assert who in screen_text(app)
        await pilot.press("escape")
        await quit_app(app, pilot)
