"""The consumers pane: one row per consumer; the selected row is the target of k/h/s/w.

On a Redis fleet the other workers' consumers follow, as `worker/cid` (no latency
or weight: their heartbeats do not carry them)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from rich.style import Style
from rich.text import Text

from ccdash.engine.snapshot import Snapshot
from ccdash.tui import format as fmt
from ccdash.tui.format import Palette
from ccdash.tui.row_table import RowTable

FADE_FOR = 6.0  # seconds an ended consumer stays (faded) before it leaves the table
FLEET_ID_WIDTH = 16  # room for `worker/cid` once other workers' consumers are shown
RemoteConsumer = tuple[str, Any, "float | None"]  # key, FleetConsumer, heartbeat age


class ConsumerTable(RowTable):
    """Consumers with state, handler version, weight, load, counts, latency and heartbeat age."""

    BORDER_TITLE = "Consumers"
    STRETCH = False
    # With the fleet's wider id column a half-width pane has no room for all: these go
    # first, whole (a p99 or heartbeat cut to `172m` would read as something else).
    DROP_ORDER = ("version", "weight", "p50")
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

    def update_from(self, snap: Snapshot, remote: Sequence[RemoteConsumer] = ()) -> None:
        """Show the snapshot's consumers (ended ones fade, then leave), then the other
        fleet workers' consumers (`remote`: key `worker/cid`, consumer, heartbeat age)."""
        if remote and self.spec[0][2] < FLEET_ID_WIDTH:
            self.set_columns((("id", "id", FLEET_ID_WIDTH), *self.COLUMNS[1:]))
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
        for key, c, age in remote:
            rows[key] = (
                (key, False),
                (c.state, False, 1.0, False),
                ("-", False),
                ("-", False),
                (c.in_flight, False),
                (fmt.count(c.processed), False),
                (fmt.count(c.failed), False, c.failed > 0),
                ("-", False),
                ("-", False),
                (fmt.duration(age), False, age is not None and age > 2.0),
            )
        self.ended = ended
        self.sync(rows)
        fleet = f" + {len(remote)} on other workers" if remote else ""
        self.subtitle(f"{live} live / {snap.desired_consumers} wanted{fleet}")

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
            return fmt.untrusted_id(value, self.spec[0][2], style)  # `worker/cid`: keep cid
        if column == "version":  # a scenario's label: outside text
            return fmt.untrusted(value, 4, style)
        return fmt.number(str(value), style)

    def selected_consumer(self) -> str | None:
        """The selected consumer's id, if it is still running."""
        key = self.selected_key()
        return None if key is None or key in self.ended else key
