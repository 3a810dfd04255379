"""The queue pane: depth now with a sparkline of the last minute, counts and rates, and
(while the autoscaler is on) its forecast against the arrivals."""

from __future__ import annotations

from collections import deque

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from ccdash.engine.snapshot import Snapshot
from ccdash.tui import format as fmt
from ccdash.tui.forecast_line import ForecastLine
from ccdash.tui.format import Palette

HISTORY = 60  # samples, one per second of engine time


class QueuePane(Vertical):
    """Depth, ready / delayed / in-flight / DLQ counts, rates, and depth over time."""

    BORDER_TITLE = "Queue"

    def __init__(self, palette: Palette, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette
        self.history: deque[float] = deque([0.0] * HISTORY, maxlen=HISTORY)
        self._next_sample: float | None = None
        self._last: tuple[object, ...] = ()

    def compose(self) -> ComposeResult:
        """Counts above, the autoscaler line (hidden while it is off), sparkline below."""
        yield Static(id="queue-counts", markup=False)
        yield ForecastLine(self.palette, id="queue-forecast")
        yield Sparkline(tuple(self.history), id="queue-spark")

    def reset_history(self, samples: list[float]) -> None:
        """Replace the depth history (a replay that jumped); sampling restarts from now."""
        self.history.clear()
        self.history.extend([0.0] * (HISTORY - len(samples)) + samples[-HISTORY:])
        self._next_sample = None
        self._last = ()
        self.query_one(Sparkline).data = tuple(self.history)

    def update_from(self, snap: Snapshot) -> None:
        """Sample depth once per second; redraw the counts if they changed."""
        q = snap.queue
        self.set_class(snap.autoscale, "-autoscale")
        if snap.autoscale:
            forecast = self.query_one(ForecastLine)
            forecast.palette = self.palette
            forecast.update_from(snap)
        if self._next_sample is None or snap.at >= self._next_sample:
            self.history.append(float(q.depth))
            self._next_sample = (
                snap.at + 1.0
                if self._next_sample is None
                else max(self._next_sample + 1.0, snap.at)
            )
            self.query_one(Sparkline).data = tuple(self.history)
        age = q.oldest_ready_age
        key = (
            q.depth,
            q.ready,
            q.delayed,
            q.in_flight,
            q.dead,
            q.capacity,
            None if age is None else fmt.duration(age),
            round(snap.publish_rate),
            round(snap.ack_rate),
            max(self.history),
            self.palette,
        )
        if key == self._last:
            return
        self._last = key
        p = self.palette
        label, value = Style(color=p.muted), Style(bold=True)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append("depth ", label)
        text.append(fmt.count(q.depth), Style(bold=True, color=p.primary))
        for name, val, color in (
            ("ready", q.ready, None),
            ("delayed", q.delayed, None),
            ("in-flight", q.in_flight, None),
            ("DLQ", q.dead, p.bad if q.dead else None),
        ):
            text.append(f"  {name} ", label)
            text.append(fmt.count(val), Style(bold=True, color=color))
        # Queue latency: how long the oldest ready message has waited (warn past 1 s).
        age = q.oldest_ready_age
        text.append("  oldest ", label)
        text.append(
            fmt.duration(age) if age is not None else fmt.DASH,
            Style(bold=True, color=p.warn if age is not None and age > 1.0 else None),
        )
        text.append("\npublish ", label)
        text.append(fmt.rate(snap.publish_rate), value)
        text.append("  ack ", label)
        text.append(fmt.rate(snap.ack_rate), value)
        text.append(f"  depth, last {HISTORY}s: max {fmt.count(max(self.history))}", label)
        if q.capacity:
            text.append(f"  capacity {fmt.count(q.capacity)}", label)
        self.query_one("#queue-counts", Static).update(text, layout=False)
