"""The drill report pane: each drill's target, detection and recovery times, verdict."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from rich.text import Text

from ccdash.tui import format as fmt
from ccdash.tui.format import Palette
from ccdash.tui.row_table import RowTable


def _field(record: Any, *names: str) -> Any:
    """A field of a drill record (an object or a mapping), trying a few names."""
    for name in names:
        if isinstance(record, dict) and name in record:
            return record[name]
        if hasattr(record, name):
            return getattr(record, name)
    return None


def _secs(value: Any) -> str:
    return fmt.duration(value) if isinstance(value, int | float) else fmt.DASH


class DrillReport(RowTable):
    """Drills run so far (scripted and interactive), oldest first."""

    BORDER_TITLE = "Drills"
    COLUMNS = (
        ("drill", "drill", 18),
        ("target", "target", 7),
        ("at", "at", 7),
        ("detected", "detected", 8),
        ("recovered", "recovered", 9),
        ("verdict", "verdict", 8),
    )

    def __init__(self, palette: Palette, t0: float, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette
        self.t0 = t0

    def update_from(self, records: Sequence[Any], now: float) -> None:
        """Show the drill records; one still running shows as such."""
        rows: dict[str, tuple[Hashable, ...]] = {}
        for i, r in enumerate(records):
            fired = _field(r, "fired_at")  # engine clock; else seconds since the run began
            when = fired - self.t0 if isinstance(fired, int | float) and fired else _field(r, "at")
            verdict = _field(r, "verdict") or "pending"
            rows[str(i)] = (
                str(_field(r, "name", "action") or "?"),
                str(_field(r, "target", "requested") or fmt.DASH),
                fmt.clock_offset(when) if isinstance(when, int | float) else fmt.DASH,
                _secs(_field(r, "detected_after_s", "detected_after")),
                _secs(_field(r, "recovered_after_s", "recovered_after")),
                str(verdict),
            )
        self.sync(rows)
        passed = sum(1 for r in rows.values() if str(r[5]).lower() in ("pass", "passed", "ok"))
        self.subtitle(f"{len(rows)} run, {passed} passed" if rows else "d to run one")

    def render_cell(self, column: str, raw: Hashable) -> Text:
        """Verdicts are coloured; targets are untrusted ids."""
        if column == "verdict":
            return fmt.verdict(self.palette, str(raw))
        if column in ("detected", "recovered", "at"):
            return fmt.number(str(raw))
        return fmt.untrusted(raw, {"drill": 18, "target": 7}.get(column, 200))
