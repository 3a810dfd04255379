"""The consumers pane: one row per consumer; the selected row is the target of k/h/s/w."""

from __future__ import annotations

from collections.abc import Hashable

from rich.style import Style
from rich.text import Text

from ccdash.engine.snapshot import Snapshot
from ccdash.tui import format as fmt
from ccdash.tui.format import Palette
from ccdash.tui.row_table import RowTable

FADE_FOR = 6.0  # seconds an ended consumer stays (faded) before it leaves the table


class ConsumerTable(RowTable):
    """Consumers with state, handler version, weight, load, counts, latency and heartbeat age."""

    BORDER_TITLE = "Consumers"
    STRETCH = False
    COLUMNS = (
        ("id", "id", 6),
        ("state", "state", 13),
        ("version", "ver", 4),
        ("weight", "w", 2),
        ("in_flight", "held", 4),
        ("processed", "done", 6),
        ("failed", "fail", 5),
        ("p50", "p50", 6),
        ("p99", "p99", 6),
        ("heartbeat", "beat", 5),
    )

    def __init__(self, palette: Palette, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette
        self.ended: set[str] = set()

    def update_from(self, snap: Snapshot) -> None:
        """Show the snapshot's consumers; ended ones fade, then leave."""
        rows: dict[str, tuple[Hashable, ...]] = {}
        ended: set[str] = set()
        live = 0
        for c in snap.consumers:
            faded = c.ended_at is not None
            if faded:
                if snap.at - (c.ended_at or snap.at) > FADE_FOR:
                    continue
                ended.add(c.id)
            else:
                live += 1
            rows[c.id] = (
                (c.id, faded),
                (c.state, c.hung, c.slow_factor, faded),
                (c.version, faded),
                (c.weight, faded),
                (c.in_flight, faded),
                (fmt.count(c.processed), faded),
                (fmt.count(c.failed), faded, c.failed > 0),
                (fmt.duration(c.latency_p50), faded),
                (fmt.duration(c.latency_p99), faded),
                (fmt.duration(c.heartbeat_age), faded, c.heartbeat_age > 2.0 and not faded),
            )
        self.ended = ended
        self.sync(rows)
        self.subtitle(f"{live} live / {snap.desired_consumers} wanted")

    def render_cell(self, column: str, raw: Hashable) -> Text:
        """Format one cell; faded rows are dimmed, warnings coloured."""
        p = self.palette
        assert isinstance(raw, tuple)
        if column == "state":
            name, hung, slow, faded = raw
            return fmt.state(p, name, hung=hung, slow=slow, faded=faded)
        value, faded, *flag = raw
        style = Style(dim=faded, color=p.warn if flag and flag[0] else None)
        if column == "id":
            return fmt.untrusted(value, 6, style)
        if column == "version":  # a scenario's label: outside text
            return fmt.untrusted(value, 4, style)
        return fmt.number(str(value), style)

    def selected_consumer(self) -> str | None:
        """The selected consumer's id, if it is still running."""
        key = self.selected_key()
        return None if key is None or key in self.ended else key
