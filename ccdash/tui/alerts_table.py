"""The alerts pane: firing, then acknowledged, then resolved; within each the most
severe first, then the newest (by when it fired, the time shown). Coloured by severity.

The engine hands alerts over active first, then the history in the order they
resolved; shown like that, a resolved alert that fired early but resolved late sat
above one that fired later, against its own `when`. The order is decided here, once,
and ORDER says it (the help and the docs quote it)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from rich.text import Text

from ccdash.engine import AlertState, Severity
from ccdash.engine.alerts import Alert
from ccdash.engine.snapshot import Snapshot
from ccdash.tui import format as fmt
from ccdash.tui.format import Palette
from ccdash.tui.row_table import RowTable

ORDER = "firing, then acknowledged, then resolved; within each, critical first, then newest first"
_STATE_RANK = {AlertState.FIRING: 0, AlertState.ACKNOWLEDGED: 1, AlertState.RESOLVED: 2}
_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


def shown_order(alerts: Sequence[Alert]) -> list[Alert]:
    """The alerts in the pane's order (ORDER); an unknown state or severity goes last."""
    return sorted(
        alerts,
        key=lambda a: (
            _STATE_RANK.get(a.state, 3),
            _SEVERITY_RANK.get(a.severity, 3),
            -a.fired_at,
            -a.id,
        ),
    )


class AlertsTable(RowTable):
    """Alerts by id; `c` acknowledges the selected one."""

    BORDER_TITLE = "Alerts"
    COLUMNS = (
        ("when", "when", 8),  # fmt.clock_offset: at most 8 cells
        ("severity", "severity", 8),
        ("state", "state", 12),
        ("message", "message", 40),
    )

    def __init__(self, palette: Palette, t0: float, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette
        self.t0 = t0
        self.states: dict[str, str] = {}

    def update_from(self, snap: Snapshot) -> None:
        """Show the snapshot's alerts; a new alert goes on top."""
        rows: dict[str, tuple[Hashable, ...]] = {}
        for a in shown_order(snap.alerts):
            msg = a.message if a.count == 1 else f"{a.message} (x{a.count})"
            rows[str(a.id)] = (fmt.clock_offset(a.fired_at - self.t0), a.severity, a.state, msg)
        self.states = {str(a.id): a.state for a in snap.alerts}
        self.sync(rows)  # in ORDER; the cursor is kept by key
        firing = sum(1 for a in snap.alerts if a.state == AlertState.FIRING)
        self.subtitle(f"{firing} firing" if firing else "none firing")

    def render_cell(self, column: str, raw: Hashable) -> Text:
        """Severity and state are coloured; the message is untrusted text."""
        p = self.palette
        if column == "severity":
            return fmt.severity(p, str(raw))
        if column == "state":
            return fmt.alert_state(p, str(raw))
        if column == "when":
            return fmt.plain(str(raw), p.muted)
        return fmt.untrusted(raw, 120)

    def selected_alert(self) -> int | None:
        """The selected alert's id, if it is firing (only those can be acknowledged)."""
        key = self.selected_key()
        if key is None or self.states.get(key) != AlertState.FIRING:
            return None
        return int(key)

    def newest_firing(self) -> int | None:
        """The newest firing alert's id (ids count up as alerts fire)."""
        firing = [int(key) for key, st in self.states.items() if st == AlertState.FIRING]
        return max(firing, default=None)
