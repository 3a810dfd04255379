"""What a refresh costs, counted rather than timed: cells formatted per refresh under
load (96 busy consumers, a full log), which must follow what is on screen, not how
many rows there are. (Timings belong in benchmarks; see ccdash/tui/throughput.py.)"""

from __future__ import annotations

import gc
from collections.abc import Hashable
from typing import Any, cast

from support.dashboard import FakeWorkload, advance, quit_app, running, screen_text

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock
from ccdash.tui.app import DashboardApp
from ccdash.tui.fingerprint import fingerprint
from ccdash.tui.log_pane import LogPane
from ccdash.tui.row_table import RowTable

CONSUMERS = 96


def _busy_app() -> DashboardApp:
    """96 consumers kept busy on a fake clock (every one finishes messages every tick)."""
    clock = FakeClock()
    cfg = EngineConfig(consumers=CONSUMERS, max_consumers=CONSUMERS, seed=7, shutdown_grace=1.0)
    holder: dict[str, FakeWorkload] = {}

    async def handler(d: Delivery) -> None:
        await holder["w"].handle(d)

    engine = Engine(cfg, handler=handler, clock=clock)
    holder["w"] = FakeWorkload(engine, clock, rate=1000.0, latency=0.05)
    return DashboardApp(engine, holder["w"], clock=clock, live=False, title="work")


def _count_cells(table: RowTable) -> list[int]:
    """Count the table's render_cell calls from now on (in the returned one-item list)."""
    calls = [0]
    render = table.render_cell

    def counting(column: str, raw: Hashable) -> Any:
        calls[0] += 1
        return render(column, raw)

    table.render_cell = counting  # type: ignore[method-assign]
    return calls


async def test_a_refresh_formats_only_the_consumer_rows_on_screen() -> None:
    """96 busy consumers, 13 rows on screen: a refresh formats the changed cells
    of the rows shown, not of all 96 (the rest are formatted when scrolled to, with
    their values then)."""
    app = _busy_app()
    async with running(app, (160, 45)) as pilot:
        await advance(app, pilot, 1.0, step=0.05)
        table = app.consumers
        shown = table.size.height - 1  # the header line, then rows
        assert table.row_count == CONSUMERS and shown < CONSUMERS / 2
        before = {k: table.raw_row(k) for k in table.row_keys()}
        calls = _count_cells(table)
        await advance(app, pilot, 0.25, step=0.05)
        changed = sum(1 for k in table.row_keys() if table.raw_row(k) != before[k])
        assert changed > 2 * shown  # most rows changed, the off-screen ones too
        assert calls[0] <= shown * len(table.spec)
        await pilot.press("1", "end")  # scrolled to the last consumer: drawn as it is now
        await pilot.pause()
        last = table.row_keys()[-1]
        assert " ".join(table.row_text(last)[:2]) in " ".join(screen_text(app).split())
        await quit_app(app, pilot)


async def test_a_theme_change_reformats_only_the_log_lines_on_screen() -> None:
    """A full log (500 lines) and a theme change: every line is formatted again when it
    is next drawn, so the refresh after it formats what the log pane shows, not 500."""
    app = _busy_app()
    async with running(app, (160, 45)) as pilot:
        log = app.query_one(LogPane)
        for i in range(600):
            log.add(app.clock.now(), "workload", f"line {i}")
        await advance(app, pilot, 0.25)
        calls = _count_cells(log)
        await pilot.press("t")
        await advance(app, pilot, 0.25)
        shown = log.size.height - 1
        assert calls[0] <= (shown + 2) * len(log.spec)  # (+2: the lines the tick added)
        await quit_app(app, pilot)


async def test_a_refresh_of_the_listed_dlq_fingerprints_no_error(monkeypatch: Any) -> None:
    """The DLQ listed by message (not grouped by error, `g`): a refresh masks no error
    text (six regular expressions each, for every dead letter the snapshot carries:
    only the grouped view shows fingerprints)."""
    app = _busy_app()
    async with running(app, (160, 45)) as pilot:
        await app.workload.inject_poison(30)
        await advance(app, pilot, 3.0, step=0.05)
        assert app.engine.snapshot().queue.dead == 30
        calls = [0]
        real = fingerprint

        def counting(error: str) -> str:
            calls[0] += 1
            return real(error)

        monkeypatch.setattr("ccdash.tui.dead_letters.fingerprint", counting)
        await advance(app, pilot, 0.25)
        assert calls[0] == 0
        await pilot.press("g")  # grouped: the fingerprints are shown
        await advance(app, pilot, 0.25)
        assert calls[0] >= 30
        await quit_app(app, pilot)


async def test_full_collections_walk_the_objects_made_since_start_not_the_whole_heap() -> None:
    """Under the dashboard a full garbage collection walked every object of the process
    (about 90,000 at 64 consumers: Textual, the widgets, the engine), stalling the
    loop 0.1-0.35 s each time; the heap as it stands once the engine runs is kept out
    of them (gc.freeze) while the dashboard runs, and handed back when it stops."""
    app = _busy_app()
    async with running(app, (160, 45)) as pilot:
        await advance(app, pilot, 0.5)
        frozen = gc.get_freeze_count()
        assert frozen > len(gc.get_objects())  # what a full collection walks: the rest
        await quit_app(app, pilot)
    assert gc.get_freeze_count() == 0


async def test_a_refresh_looks_up_no_theme(monkeypatch: Any) -> None:
    """Textual asks for the current theme for every line it draws (`ansi_theme`); each
    ask looked the theme up in `available_themes`, which ccdash filters into a fresh
    dict (about 120 lookups a refresh at 96 consumers). The theme is looked up when it
    or the set of themes changes, not per draw."""
    calls = [0]
    real = cast(property, DashboardApp.available_themes).fget
    assert real is not None

    def counting(self: DashboardApp) -> Any:
        calls[0] += 1
        return real(self)

    monkeypatch.setattr(DashboardApp, "available_themes", property(counting))
    app = _busy_app()
    async with running(app, (160, 45)) as pilot:
        await advance(app, pilot, 0.5)
        calls[0] = 0
        for _ in range(20):
            await advance(app, pilot, 0.05)
        assert calls[0] == 0
        before = app.current_theme.name
        await pilot.press("t")  # another theme: looked up again, then kept
        await advance(app, pilot, 0.05)
        assert app.current_theme.name == app.theme == app.theme_name != before
        calls[0] = 0
        for _ in range(20):
            await advance(app, pilot, 0.05)
        assert calls[0] == 0
        await quit_app(app, pilot)
