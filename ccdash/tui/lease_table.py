"""The in-flight leases pane: message, holder, attempt, and time left as a bar."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from rich.text import Text

from ccdash.engine.snapshot import Snapshot
from ccdash.tui import format as fmt
from ccdash.tui.format import Palette
from ccdash.tui.row_table import RowTable

BAR_WIDTH = 10
SHOWN = 40  # leases shown at most: the soonest to expire
FLEET_HOLDER_WIDTH = 16  # room for `worker/cid` once other workers' leases are shown
_BLANK: tuple[Hashable, ...] = ("", "", "", None)


class LeaseTable(RowTable):
    """Live leases, soonest deadline first."""

    BORDER_TITLE = "In-flight leases"
    COLUMNS = (
        ("message", "message", 14),
        ("consumer", "consumer", 8),
        ("attempt", "try", 3),
        ("left", "time left", BAR_WIDTH + 6),
    )

    def __init__(self, palette: Palette, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette

    def update_from(
        self, snap: Snapshot, remote: Sequence[Any] = (), remote_age: float | None = None
    ) -> None:
        """Show the soonest-expiring leases, one per row slot; bars move in tenths.
        `remote`: the other workers' leases (FleetLease), `remote_age` seconds old.

        Leases come and go many times a second, so rows are slots (the i-th
        soonest lease), not message ids: cells change in place and rows are only
        added when more leases are live than ever shown, never removed (an unused
        slot is blank). Adding or removing rows re-lays out the whole screen.
        """
        vt = snap.visibility_timeout  # the broker's, the one that leases (also when replayed)
        shown = max(1, min(SHOWN, self.size.height - 1))  # no scrolling a 4 Hz list
        if remote and self.spec[1][2] < FLEET_HOLDER_WIDTH:
            cols = list(self.COLUMNS)
            cols[1] = ("consumer", "consumer", FLEET_HOLDER_WIDTH)
            self.set_columns(tuple(cols))
        leases = [
            (li.message_id, li.consumer_id, li.attempt, li.expires_in) for li in snap.leases[:shown]
        ]
        if remote:  # the other workers' leases (`remote`: FleetLease), merged by expiry
            leases += [
                (li.message_id, f"{li.worker}/{li.consumer}", li.attempt, li.expires_in)
                for li in remote[:shown]
            ]
            leases.sort(key=lambda x: x[3])
        rows: dict[str, tuple[Hashable, ...]] = {}
        for i, (mid, holder, attempt, expires_in) in enumerate(leases[:shown]):
            left = max(0.0, expires_in)
            step = round(min(1.0, left / vt) * BAR_WIDTH)
            rows[str(i)] = (mid, holder, attempt, (step, f"{left:.0f}s"))
        for i in range(len(rows), min(self.row_count, shown)):
            rows[str(i)] = _BLANK
        self.sync(rows)
        in_flight = snap.queue.in_flight
        note = f"{in_flight} in flight"
        if remote_age is None:
            more = in_flight - min(len(leases), shown)
            note += f", {more} not shown" if more > 0 else ""
        else:  # Redis counts entries read ahead into a worker's buffer as pending too
            cut, unlisted = len(leases) - shown, in_flight - len(leases)
            note += f", {cut} not shown" if cut > 0 else ""
            note += f", {unlisted} unlisted" if unlisted > 0 else ""
            note += f", other workers' as of {remote_age:.1f}s ago"
        self.subtitle(note)

    def render_cell(self, column: str, raw: Hashable) -> Text:
        """Untrusted ids stay literal; the bar is drawn here."""
        p = self.palette
        if raw is None or raw == "":
            return fmt.plain("")
        if column == "left":
            assert isinstance(raw, tuple)
            step, label = raw
            return fmt.bar(p, step / BAR_WIDTH, BAR_WIDTH, label)
        if column == "attempt":
            return fmt.number(str(raw), p.warn if isinstance(raw, int) and raw > 1 else "")
        return fmt.untrusted_id(raw, self.spec[0][2] if column == "message" else self.spec[1][2])
