"""Where a headless run shows itself: timestamped plain lines, or a Rich live panel."""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ccdash.engine import DRILL_EVENTS, EventKind
from ccdash.headless.report import plain_report, rich_report
from ccdash.scenario import Progress, RunEvent, Scenario, Workload, WorkloadEvent
from ccdash.text import sanitize  # untrusted text (handler errors) shown literally

PLAIN_STATUS_EVERY = 2.0  # seconds between status lines without a terminal
LIVE_REFRESH_EVERY = 0.25
# Events printed above the live panel (drills too); the rest only join the recent list.
_PRINTED = frozenset(
    {
        EventKind.CONSUMER_FAILED,
        EventKind.CONSUMER_REPLACED,
        RunEvent.RUN_STARTED,
        RunEvent.RUN_ENDED,
        RunEvent.DRAINING,
    }
)


class View(Protocol):
    """Where a headless run shows itself."""

    status_every: float

    def begin(self, scenario: Scenario, workload: Workload) -> None: ...
    def event(self, ev: WorkloadEvent) -> None: ...
    def note(self, text: str) -> None: ...
    def status(self, p: Progress) -> None: ...
    def end(self, report: dict[str, Any]) -> None: ...


class PlainView:
    """Timestamped lines, for pipes, CI logs and ssh without a terminal."""

    status_every = PLAIN_STATUS_EVERY

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def _print(self, text: str) -> None:
        # The one way out: whatever the text holds (a scenario's name, a handler's
        # error, a broker path), nothing reaches the stream that could act on a terminal.
        print(sanitize(text, keep="\n"), file=self.stream, flush=True)

    def _line(self, at: float, text: str) -> None:
        self._print(f"[+{at:7.2f}s] {text}")

    def begin(self, scenario: Scenario, workload: Workload) -> None:
        """The header: what runs, with which seed."""
        self._print(
            f"ccdash --demo: {sanitize(scenario.name, 200)} (seed {workload.seed}) - "
            f"{sanitize(scenario.description, 500)}"
        )

    def event(self, ev: WorkloadEvent) -> None:
        """One line per event."""
        self._line(ev.at, sanitize(ev.message))

    def note(self, text: str) -> None:
        """A line from the runner itself."""
        self._print(text)

    def status(self, p: Progress) -> None:
        """A status line every few seconds."""
        self._line(
            p.elapsed,
            f"{p.phase}: published {p.published}, acked {p.completed}, "
            f"queue {p.depth}, in flight {p.in_flight}, DLQ {p.dead}, "
            f"consumers {p.consumers_up} up / {p.consumers_failed} failed, "
            f"{p.ack_rate:.0f} msg/s",
        )

    def end(self, report: dict[str, Any]) -> None:
        """The report table."""
        self._print("\n" + plain_report(report))


class LiveView:
    """A Rich live panel on a terminal: time, throughput, queue, consumers, drills."""

    status_every = LIVE_REFRESH_EVERY

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = Live(console=console, refresh_per_second=8, transient=True)
        self.recent: deque[WorkloadEvent] = deque(maxlen=6)
        self.title = ""

    def begin(self, scenario: Scenario, workload: Workload) -> None:
        """Print the header and start the live panel."""
        self.title = f"{sanitize(scenario.name, 200)} (seed {workload.seed})"
        self.console.print(
            Text.assemble(
                ("ccdash --demo: ", "bold"),
                self.title,
                " - ",
                (sanitize(scenario.description, 500), "dim"),
            )
        )
        self.live.start()

    def event(self, ev: WorkloadEvent) -> None:
        """Drills and failures stay printed above the panel; all go to the recent list."""
        self.recent.append(ev)
        drill = ev.kind in DRILL_EVENTS
        if drill or ev.kind in _PRINTED:
            style = "bold" if drill else ""
            self.console.print(Text(f"[+{ev.at:7.2f}s] {sanitize(ev.message)}", style=style))

    def note(self, text: str) -> None:
        """A message from the runner."""
        self.console.print(Text(sanitize(text), style="yellow"))

    def status(self, p: Progress) -> None:
        """Redraw the panel."""
        grid = Table.grid(padding=(0, 2))
        for _ in range(4):
            grid.add_column()
        total = p.duration if p.duration != float("inf") else max(p.elapsed, 1.0)
        grid.add_row("time", f"{min(p.elapsed, total):.1f} / {total:g} s", "phase", p.phase)
        grid.add_row("published", str(p.published), "acked", str(p.completed))
        grid.add_row(
            "throughput",
            f"{p.ack_rate:.0f} msg/s",
            "queue",
            f"{p.depth} waiting, {p.in_flight} in flight",
        )
        grid.add_row(
            "consumers", f"{p.consumers_up} up, {p.consumers_failed} failed", "DLQ", str(p.dead)
        )
        grid.add_row("drills", f"{p.drills_fired} fired of {p.drills_planned} planned", "", "")
        events = Text(
            "\n".join(f"+{e.at:6.2f}s {sanitize(e.message)}" for e in self.recent),
            style="dim",
            overflow="ellipsis",
            no_wrap=True,
        )
        bar = ProgressBar(total=total, completed=min(p.elapsed, total))
        self.live.update(Panel(Group(bar, grid, events), title=Text(self.title)))

    def end(self, report: dict[str, Any]) -> None:
        """Stop the panel; print the report tables."""
        self.live.stop()
        self.console.print(rich_report(report))
