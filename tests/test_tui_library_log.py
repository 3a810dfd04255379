"""ccdash's own library warnings while the dashboard runs (a broker's lock wait, a
lost Redis connection): under Textual, stderr is captured and dropped, so they
would go unseen; they are lines of the log pane instead, sanitised, and before the
engine is up (a broker open waiting on a lock) the banner says it."""

from __future__ import annotations

import asyncio
import logging
import threading

from support.dashboard import advance, log_text, make_app, quit_app, running
from textual.widgets import Static

from ccdash.brokers.memory import MemoryBroker


async def test_library_warnings_are_log_pane_lines_from_any_thread() -> None:
    app = make_app()
    before = list(logging.getLogger("ccdash").handlers)
    async with running(app, (160, 45)) as pilot:
        logging.getLogger("ccdash.redis").warning(
            "Redis connection lost (%s); retrying with backoff", "refused\x1b[2J"
        )
        writer = threading.Thread(
            target=logging.getLogger("ccdash.brokers.sqlite").error,
            args=("sqlite broker %s: checkpoint failed", "/tmp/q.db"),
        )
        writer.start()
        writer.join()
        logging.getLogger("ccdash.redis").info("not a warning: not shown")
        await advance(app, pilot, 0.5)
        await asyncio.sleep(0)  # the writer thread's line comes through the loop
        await advance(app, pilot, 0.5)
        text = log_text(app)
        assert "Redis connection lost (refused" in text
        assert "\x1b" not in text  # sanitised: the escape never reaches the screen
        assert "sqlite broker /tmp/q.db: checkpoint failed" in text
        assert "not a warning" not in text
        await quit_app(app, pilot)
    assert logging.getLogger("ccdash").handlers == before  # gone with the dashboard


class _SlowOpen(MemoryBroker):
    """A broker whose open waits, saying so from another thread (as SQLite's open
    behind another process's write lock does), until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()

    async def open(self) -> None:
        def wait() -> None:
            logging.getLogger("ccdash.brokers.sqlite").warning(
                "sqlite broker q.db: another process holds the write lock; waiting for it"
            )
            self.go.wait(30)

        await asyncio.to_thread(wait)


async def test_a_warning_before_the_engine_is_up_is_in_the_banner() -> None:
    broker = _SlowOpen()
    app = make_app(broker=broker)
    broker.clock = app.clock  # the dashboard's fake clock
    async with app.run_test(size=(120, 40)) as pilot:
        banner = app.query_one("#banner", Static)
        loop = asyncio.get_running_loop()
        end = loop.time() + 20.0
        while "write lock" not in str(banner.render()) and loop.time() < end:
            await pilot.pause(0.02)
        assert "another process holds the write lock" in str(banner.render())
        assert banner.has_class("-shown")
        broker.go.set()
        await app.engine_ready.wait()
        await pilot.pause()
        assert not banner.has_class("-shown")  # up now: the start-up line goes
        assert "write lock" in log_text(app)  # and stays in the log
        await quit_app(app, pilot)
