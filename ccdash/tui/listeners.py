"""What the dashboard hears from the engine, the workload and the fleet view, and the
operations it runs beside the engine (/metrics, the JSON-lines log).

Listeners only buffer (the engine's hot path must stay cheap): the app drains the
buffer into the log pane on its next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from rich.text import Text
from textual.app import App
from textual.widgets import Static

from ccdash.engine import Engine, Event
from ccdash.ops.logfile import JsonLogWriter, open_log
from ccdash.ops.prometheus import MetricsServer, serve_metrics
from ccdash.record.session import RecordingSession
from ccdash.text import sanitize
from ccdash.tui.header_bar import HeaderBar
from ccdash.tui.log_pane import DashboardEvent


class Listeners(App[Any]):
    """The dashboard's listeners and its side operations (a mixin of the app)."""

    engine: Engine
    clock: Any
    log_file: str | None
    metrics_port: int | None
    metrics: MetricsServer | None
    log_writer: JsonLogWriter | None
    recording: RecordingSession | None
    _events: deque[Event]
    _dropped: int
    engine_ready: asyncio.Event
    _logged: _ToLogPane | None = None

    async def _start_ops(self) -> None:
        """Hear ccdash's own warnings; open the log file and serve /metrics, as asked
        (OpsError if either cannot)."""
        self._logged = _ToLogPane(self)
        logging.getLogger("ccdash").addHandler(self._logged)
        if self.log_file is not None:
            self.log_writer = open_log(self.log_file)
            self.engine.add_listener(self.log_writer)
        if self.metrics_port is not None:
            self.metrics = await serve_metrics(self.engine, self.metrics_port)
            where = f"{self.metrics.host}:{self.metrics.port}"
            self.query_one(HeaderBar).metrics = where
            self._events.append(
                Event(
                    0, self.clock.now(), DashboardEvent.METRICS, f"serving http://{where}/metrics"
                )
            )

    async def _stop_ops(self) -> None:
        """Stop serving /metrics and close the log file; warnings go to stderr again."""
        if self._logged is not None:
            logging.getLogger("ccdash").removeHandler(self._logged)
            self._logged = None
        if self.metrics is not None:
            await self.metrics.stop()
        if self.log_writer is not None:
            self.log_writer.close()

    def _on_engine_event(self, event: Event) -> None:
        """Engine listener: buffer only (the engine's hot path must stay cheap)."""
        if len(self._events) == self._events.maxlen:
            self._dropped += 1
        self._events.append(event)

    def _on_logged(self, event: Event) -> None:
        """A warning ccdash logged: a log line on the next tick; before the engine is up
        (a broker's open waiting on a lock), in the banner too, until it is."""
        self._on_engine_event(event)
        if not self.engine_ready.is_set():
            banner = self.query_one("#banner", Static)
            banner.update(Text(f"starting: {sanitize(event.message, 300)}"))
            banner.add_class("-shown", "-starting")

    def _started(self) -> None:
        """The engine is up: a start-up warning's banner goes (its log line stays)."""
        banner = self.query_one("#banner", Static)
        if banner.has_class("-starting"):
            banner.remove_class("-shown", "-starting")

    def _on_fleet_trouble(self, message: str, error: bool) -> None:
        """The fleet view lost (or regained) Redis: one log line, on the next tick."""
        kind = DashboardEvent.FLEET_ERROR if error else DashboardEvent.FLEET
        self.query_one(HeaderBar).broker_down_at = self.clock.now() if error else None
        self._events.append(Event(0, self.clock.now(), kind, message))

    def _on_workload_event(self, event: Any) -> None:
        """Workload listener: its own events (drills, run phases); engine ones come direct."""
        if getattr(event, "source", "") == "engine":
            return
        if self.recording is not None:
            self.recording.run_event(event)
        message = getattr(event, "message", None) or str(event)
        kind = getattr(event, "kind", None) or DashboardEvent.WORKLOAD
        self._events.append(Event(0, self.clock.now(), str(kind), str(message)))


__all__ = ["Listeners"]

MAX_LOGGED = 2000  # characters of one logged line kept (it may quote foreign text)


class _ToLogPane(logging.Handler):
    """ccdash's own warnings and errors (`logging.getLogger("ccdash")`, from any thread)
    while the dashboard runs. Left to the last-resort handler they would go to stderr,
    which Textual captures and drops: an operator would never see a broker's lock wait
    or a refused write."""

    def __init__(self, app: Listeners) -> None:
        super().__init__(logging.WARNING)
        self.app = app
        self.loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        """Hand the line to the loop (a broker's writer thread logs too)."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format: the template still says something
            message = str(record.msg)
        kind = (
            DashboardEvent.LOG_ERROR
            if record.levelno >= logging.ERROR
            else DashboardEvent.LOG_WARNING
        )
        event = Event(0, self.app.clock.now(), kind, sanitize(message, MAX_LOGGED))
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to show it to
            self.loop.call_soon_threadsafe(self.app._on_logged, event)
