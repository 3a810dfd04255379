"""The log pane: engine events and operator actions, newest on top (`v` hides it).

A keyed table like the others, so `/` filters it and its order holds on every
update; lines are buffered by `add` and shown by `flush` (once per refresh, not per
event: a burst of a thousand events costs one redraw).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from rich.style import Style
from rich.text import Text

from ccdash.engine import DrillEvent, EventKind, Kind, Level
from ccdash.record.kinds import OperatorEvent
from ccdash.scenario.run_events import RunEvent
from ccdash.tui import format as fmt
from ccdash.tui.format import Palette
from ccdash.tui.row_table import RowTable


class DashboardEvent(Kind):
    """Lines the dashboard adds to its log of its own accord."""

    LOG = "log", Level.WARNING, "events came faster than the log shows them; says how many"
    METRICS = "metrics", Level.INFO, "the Prometheus endpoint is served; says where"
    FLEET = "fleet", Level.INFO, "the fleet view reads Redis again"
    FLEET_ERROR = "fleet-error", Level.ERROR, "the fleet view lost Redis"
    WORKLOAD = "workload", Level.INFO, "a run's line that named no kind"
    LOG_WARNING = "log-warning", Level.WARNING, "ccdash logged a warning (a lock wait, ...)"
    LOG_ERROR = "log-error", Level.ERROR, "ccdash logged an error (a write Redis refused, ...)"


# How a kind is coloured (by its text, so recorded kinds read back are coloured too).
_BAD = frozenset(
    {
        EventKind.CONSUMER_FAILED,
        EventKind.RESTART_LIMIT,
        EventKind.DEAD_LETTERED,
        EventKind.ALERT_FIRING,
        DrillEvent.FAIL,
        OperatorEvent.ERROR,
        DashboardEvent.FLEET_ERROR,
        DashboardEvent.LOG_ERROR,
    }
)
_GOOD = frozenset(
    {
        EventKind.ENGINE_STARTED,
        EventKind.CONSUMER_STARTED,
        EventKind.CONSUMER_REPLACED,
        EventKind.ROLLING_UPDATE_STARTED,
        EventKind.CONSUMPTION_RESUMED,
        EventKind.DLQ_REDRIVEN,
        EventKind.ALERT_RESOLVED,
        DrillEvent.PASS,
        RunEvent.RUN_STARTED,
    }
)
MAX_LINES = 500


def _role(kind: str, operator: bool) -> str:
    if operator:
        return "accent"
    if kind in _BAD:
        return "bad"
    if kind in _GOOD:
        return "ok"
    return "muted"


class LogPane(RowTable):
    """A bounded log, newest first; text is literal and sanitised."""

    BORDER_TITLE = "Log"
    COLUMNS = (("when", "when", 8), ("kind", "event", 20), ("message", "message", 40))

    def __init__(self, palette: Palette, t0: float, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette
        self.t0 = t0
        self.lines_written = 0
        self._lines: deque[tuple[str, tuple[Hashable, ...]]] = deque(maxlen=MAX_LINES)
        self._pending = False

    def add(self, at: float, kind: str, message: str, *, operator: bool = False) -> None:
        """Buffer one event line (time, kind, message); `flush` shows it."""
        self.lines_written += 1
        row = (fmt.clock_offset(at - self.t0), (kind, _role(kind, operator)), message)
        self._lines.append((str(self.lines_written), row))
        self._pending = True

    def clear(self) -> None:
        """Forget every line (a replay jumped: the log starts again from there)."""
        self._lines.clear()
        self._pending = True
        self.flush()

    def flush(self) -> None:
        """Show the buffered lines, newest on top."""
        if not self._pending:
            return
        self._pending = False
        self.sync(dict(reversed(self._lines)))
        self.subtitle(f"{len(self._lines)} lines" if self._lines else "")

    def all_text(self) -> str:
        """Every line held, oldest first, as plain text (tests, captures)."""
        return "\n".join(
            f"{when} {kind[0] if isinstance(kind, tuple) else kind} {msg}"
            for _, (when, kind, msg) in self._lines
        )

    def render_cell(self, column: str, raw: Hashable) -> Text:
        """Kinds are coloured by what they mean; messages are untrusted text."""
        p = self.palette
        if column == "when":
            return fmt.plain(str(raw), p.muted, justify="right")
        if column == "kind":
            assert isinstance(raw, tuple)
            kind, role = raw
            return fmt.untrusted(kind, 20, Style(color=getattr(p, role)))
        return fmt.untrusted(raw, 240)

    def invalidate(self) -> None:
        """A theme change: every held line is drawn again on the next flush."""
        super().invalidate()
        self._pending = True
