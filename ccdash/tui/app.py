"""The dashboard app: panes fed by engine snapshots, keys that act on the engine.

The engine (and the scenario's load) runs in one app-level worker; a failure
there is shown in a banner, never swallowed. One timer pulls a snapshot a few
times a second and each pane diffs it in; engine events are buffered by a
listener and drained into the log on the same tick. `q` stops the engine
gracefully (handlers finish, leases go back to the queue) before exiting.
The same worker serves /metrics and writes the JSON-lines log when asked; if the
broker, the metrics port or the log file cannot be opened, the app exits at once
with `startup_error` set (run_tui raises it for the CLI's one-line error).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from collections import deque
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from ccdash import heap
from ccdash.aio import stop_signals
from ccdash.brokers.base import BrokerError
from ccdash.engine import Engine, Event
from ccdash.ops import OpsError
from ccdash.ops.logfile import JsonLogWriter
from ccdash.ops.prometheus import MetricsServer
from ccdash.record.session import RecordingSession
from ccdash.record.writer import Recorder
from ccdash.text import sanitize
from ccdash.tui.alerts_table import AlertsTable
from ccdash.tui.app_themes import ThemedApp
from ccdash.tui.commands import KeyCommands
from ccdash.tui.consumer_table import ConsumerTable
from ccdash.tui.dead_letters import DeadLetterTable
from ccdash.tui.drill_report import DrillReport
from ccdash.tui.feed import Feed, LiveFeed, ScreenState
from ccdash.tui.fleet_feed import FleetFeed
from ccdash.tui.format import Palette
from ccdash.tui.header_bar import HeaderBar
from ccdash.tui.key_spec import Key
from ccdash.tui.keys import KEYS, bindings
from ccdash.tui.lease_table import LeaseTable
from ccdash.tui.listeners import Listeners
from ccdash.tui.log_pane import DashboardEvent, LogPane
from ccdash.tui.message_detail import MessageDetail
from ccdash.tui.queue_pane import QueuePane
from ccdash.tui.themes import check_theme, load_themes
from ccdash.tui.view_actions import ViewActions

REFRESH_INTERVAL = 0.25  # seconds between snapshots: 4 per second
# Seconds the load gets to end after `q` before the engine stops anyway: on a broker that
# answers it ends at once; on one that does not (Redis paused), waiting is no use.
LOAD_END_WAIT = 0.5


class DashboardApp(ViewActions, Listeners, ThemedApp):
    """The ccdash dashboard over one running engine and its workload."""

    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {KeyCommands}  # the dashboard's keys, found by key or words
    PALETTE_KEYS: ClassVar[tuple[Key, ...]] = KEYS
    TITLE = "ccdash"
    BINDINGS = bindings()  # type: ignore[assignment]  # (list invariance)

    def __init__(
        self,
        engine: Engine,
        workload: Any,
        *,
        theme: str | None = None,
        title: str = "",
        clock: Any = None,
        live: bool = True,
        start_load: bool = True,
        burst_size: int = 200,
        refresh_interval: float = REFRESH_INTERVAL,
        metrics_port: int | None = None,
        log_file: str | None = None,
        fleet: FleetFeed | None = None,
        recorder: Recorder | None = None,
        read_only: bool = False,
        feed: Feed | None = None,
        handle_signals: bool = False,
    ) -> None:
        """`live=False` disables the app's own timers (tests call `refresh_now`).

        `fleet` (on a Redis broker): the rest of the fleet, read about once a second
        and merged into the consumer and lease panes; k, +/- and D on its consumers go
        to their workers through the control channel.

        `metrics_port` serves Prometheus text on 127.0.0.1 while the engine runs (0: any
        free port; `metrics.port` and the log say which); `log_file` gets one JSON line
        per engine event; `recorder` records what the dashboard shows (a frame per
        refresh, every event and every operator command) until the engine stops.
        `read_only`: every key that would change something is refused with a one-line
        notice. `feed`: where the panes read from (default: this engine and workload,
        live). `handle_signals`: SIGTERM and SIGHUP quit as `q` does (the process's own
        dashboard; their default action would leave the terminal in the dashboard's
        modes and end the engine without its grace)."""
        super().__init__()
        self.engine = engine
        self.workload = workload
        self.clock = clock or engine.clock
        self.t0 = self.clock.now()
        self.live = live
        self.start_load = start_load
        self.burst_size = burst_size
        self.refresh_interval = refresh_interval
        self.scenario_title = title or "ccdash"
        self.ccdash_themes = load_themes()
        self.theme_name = check_theme(theme)
        self.palette = Palette.from_theme(self.ccdash_themes[self.theme_name])
        self.quitting = False
        self.handle_signals = handle_signals
        self.stopped_by: signal.Signals | None = None  # exit 128+signal, as --demo does
        self.engine_error: BaseException | None = None
        self.startup_error: BrokerError | OpsError | None = None  # the app exited (code 2)
        self.fleet = fleet
        self.metrics_port = metrics_port
        self.log_file = log_file
        self.metrics: MetricsServer | None = None
        self.log_writer: JsonLogWriter | None = None
        self.engine_worker: Worker[Any] | None = None
        self._stop = asyncio.Event()
        self.engine_ready = asyncio.Event()  # set once the engine runs (tests wait on it)
        self._events: deque[Event] = deque(maxlen=2000)
        self._dropped = 0
        self.read_only = read_only
        self.feed: Feed = feed or LiveFeed(engine, workload)
        self.state: ScreenState | None = None
        self.pinned: str | None = None  # the detail pane the operator chose; None: urgent
        self.zoomed: str | None = None
        self.log_hidden = False
        self._dead_seen = (0, 0)  # (dead-lettered total, DLQ size) last tick
        self._dead_changed_at: float | None = None
        self._shown: tuple[object, ...] = ()
        engine.add_listener(self._on_engine_event)
        self.recording = None if recorder is None else RecordingSession(recorder, engine)

    # -- layout ---------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """Header, the panes in one grid (the layout shows some of them), the footer."""
        p, t0 = self.palette, self.t0
        yield HeaderBar(p, self.scenario_title, t0, id="header")
        yield Static("", id="banner", markup=False)
        yield Static("", id="too-small", markup=False)
        with Container(id="body"):  # children in layout.ALL_PANES order: the grid fills so
            yield QueuePane(p, id="queue")
            yield ConsumerTable(p, id="consumers")
            yield AlertsTable(p, t0, id="alerts")
            yield DrillReport(p, t0, id="drills", can_run=not self.read_only)
            yield DeadLetterTable(p, t0, id="dead")
            yield LeaseTable(p, id="leases")
            yield LogPane(p, t0, id="log")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        """Themes, pane classes, the engine worker and the refresh timer."""
        for theme in self.ccdash_themes.values():
            self.register_theme(theme)
        self.theme = self.theme_name
        self.main_screen: Screen[Any] = self.screen
        self.query_one(HeaderBar).read_only = self.read_only
        for w in self._panes():
            w.add_class("pane")
        self.consumers.focus()
        self._layout()
        self.engine_worker = self.run_worker(
            self._run_engine(), name="engine", group="engine", exit_on_error=False
        )
        if self.live:
            self.set_interval(self.refresh_interval, self.refresh_now, name="refresh")
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for sig in stop_signals():
                if sig != signal.SIGINT:  # Ctrl-C is a key here (the terminal is raw)
                    loop.add_signal_handler(sig, self._on_stop_signal, sig)
        self.refresh_now()

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        """SIGTERM, SIGHUP: quit as on `q`; one while stopping exits at once (the terminal
        given back; the engine's leases still go back to the queue)."""
        if self.quitting:
            self.exit(128 + sig, return_code=128 + sig)
            return
        self.stopped_by = sig
        self.run_worker(self.action_quit(), name="quit", group="quit")

    def on_resize(self, event: Any) -> None:
        """Another size class may show other panes."""
        self._layout(event.size)

    # -- the engine -------------------------------------------------------------

    async def _run_engine(self) -> int:
        """Run the engine and the workload's load until quit; leftover count on success."""
        try:
            await self._start_ops()
            await self.engine.start()
        except BaseException as exc:
            await self._stop_ops()
            if not isinstance(exc, BrokerError | OpsError):
                raise
            # Nothing to show: leave at once and let run_tui say why.
            self.startup_error = exc
            self.exit(2, return_code=2)
            return 0
        grace: float | None = None  # the configured shutdown grace
        load: asyncio.Task[Any] | None = None
        stop: asyncio.Task[Any] | None = None
        try:
            heap.freeze()  # out of full collections while the dashboard runs (ccdash.heap)
            self.engine_ready.set()
            self._started()
            self.refresh_now()  # the consumers exist now: show them without waiting a tick
            if self.fleet is not None:
                self.run_worker(
                    self.fleet.run(self._on_fleet_trouble),
                    name="fleet view",
                    group="fleet",
                    exit_on_error=False,
                )
            if self.start_load and self.workload is not None:
                load = asyncio.create_task(
                    self.workload.run(duration=math.inf, on_event=self._on_workload_event),
                    name="ccdash-load",
                )
            stop = asyncio.create_task(self._stop.wait())
            waiting = {stop} if load is None else {stop, load}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if load is not None and load in done:
                load.result()  # a failed load generator is an engine-worker failure
                await stop
            if load is not None and not load.done():
                self.workload.stop("operator quit")  # publishing ends, the run returns
                await asyncio.wait({load}, timeout=LOAD_END_WAIT)
                if load.done():
                    load.result()
        except asyncio.CancelledError:
            # The app is going away without `q` (a crash, a test harness): no grace
            # period, so the engine stops now; leases still go back to the queue.
            grace = 0.0
            raise
        finally:
            for task in (stop, load if grace == 0.0 else None):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            try:
                await self.engine.stop(grace=grace)
            finally:
                heap.thaw()  # collectable again, as the process ends or the next app starts
                if load is not None and not load.done():
                    # Still waiting for publishes a broker that stopped answering never
                    # confirmed: the stop closed the broker, which failed them.
                    await asyncio.wait({load}, timeout=LOAD_END_WAIT)
                    load.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await load
                await self._stop_ops()
                if self.recording is not None:
                    self.recording.finish()
        return self.engine.leftover

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Show an engine failure; exit once the engine has stopped after `q`."""
        worker, state = event.worker, event.state
        if worker.group != "engine":
            if state == WorkerState.ERROR:
                self.say(f"{worker.name or 'command'} failed: {worker.error}", error=True)
            return
        if state == WorkerState.ERROR:
            self.engine_error = worker.error
            banner = self.query_one("#banner", Static)
            banner.update(
                Text(
                    f"engine failed: {sanitize(repr(worker.error), 300)} "
                    "- the dashboard shows its last state; q quits"
                )
            )
            banner.add_class("-shown")
            self.say(f"engine failed: {worker.error!r}", error=True)
        if state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            self.refresh_now()
            if self.quitting:
                self._exit_with_code()

    # -- refresh ------------------------------------------------------------------

    def refresh_now(self) -> None:
        """Read one state from the feed and let every pane diff it in; drain events into
        the log; re-plan the layout (the most urgent pane may have changed)."""
        if not self.engine_ready.is_set():
            return  # a broker is read only once the engine has opened it (it may not open)
        state = self.state = self.feed.read()
        snap = state.snap
        self.query_one(HeaderBar).update_from(snap, state.lost)
        self.query_one(QueuePane).update_from(snap)
        fleet = self.fleet
        self.consumers.update_from(snap, fleet.consumers() if fleet else ())
        if fleet is None:
            self.query_one(LeaseTable).update_from(snap)
        else:
            self.query_one(LeaseTable).update_from(snap, fleet.leases(), fleet.lease_age())
        dead_now = (snap.dead_lettered, snap.queue.dead)
        if dead_now[0] > self._dead_seen[0]:
            self._dead_changed_at = snap.at  # a new dead letter: urgent for a while
        self._dead_seen = dead_now
        self.dead.update_from(snap)
        self.alerts.update_from(snap)
        self.query_one(DrillReport).update_from(list(state.drills), state.lost)
        if self.recording is not None:
            self.recording.recorder.frame(snap, state.drills, state.lost)
        log = self.query_one(LogPane)
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            log.add(snap.at, DashboardEvent.LOG, f"{dropped} events not shown (too many at once)")
        while self._events:
            ev = self._events.popleft()
            log.add(ev.at, ev.kind, ev.message)
        log.flush()
        self._layout()

    def say(self, message: str, *, error: bool = False) -> None:
        """Confirm an operator action in the log (and in the recording, if any)."""
        if self.recording is not None:
            self.recording.recorder.operator(self.clock.now(), message, error=error)
        super().say(message, error=error)

    def on_dead_letter_table_opened(self, event: DeadLetterTable.Opened) -> None:
        """Enter on a dead letter: its payload and history."""
        self.push_screen(MessageDetail(event.letter, self.palette, self.t0))

    # -- view actions ---------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Dashboard keys act only on the dashboard you can see: not under a dialog, and
        only `q` while the terminal is too small to show the panes."""
        main = getattr(self, "main_screen", None)
        if main is None or action not in _DASHBOARD_ACTIONS:
            return True
        if action == "next_pane" and main.has_class("-wide"):
            return False  # every pane shows already
        if main.has_class("-tiny") and action != "quit":
            return False
        return self.screen is main

    async def action_quit(self) -> None:
        """Stop the engine gracefully, then exit (0, or 1 if the engine had failed)."""
        if self.quitting:
            return
        self.quitting = True
        self.query_one(HeaderBar).stopping = True
        self.say("stopping: handlers finish, leases go back to the queue")
        self._stop.set()
        if self.engine_worker is None or self.engine_worker.is_finished:
            self._exit_with_code()

    def _exit_with_code(self) -> None:
        code = 1 if self.engine_error is not None else 0
        if self.stopped_by is not None and code == 0:
            code = 128 + self.stopped_by
        self.exit(code, return_code=code)


_DASHBOARD_ACTIONS = frozenset(k.action.split("(")[0] for k in KEYS)


__all__ = ["DashboardApp"]
