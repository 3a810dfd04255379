"""The drill report pane: each drill's target, held / recovered / lost messages,
detection and recovery times, and its verdict."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from rich.style import Style
from rich.text import Text

from ccdash.scenario.drill_record import Verdict
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


def counts(record: Any, lost_overall: int | None) -> tuple[str, str, str]:
    """held / recovered / lost for one drill, as shown.

    held: messages the drill put at risk (the victim's leases, or what it injected);
    recovered: those handled since (acked elsewhere or dead-lettered). lost is never more
    than the loss checker's own count: 0 once the verdict is in and every message was
    recovered, "–" while the drill still runs."""
    if _field(record, "action") not in ("kill", "hang", "poison", "burst"):
        return fmt.DASH, fmt.DASH, fmt.DASH  # a drill that puts no message at risk
    held = _field(record, "held")
    n = len(held) if isinstance(held, tuple | list) else held if isinstance(held, int) else None
    if n is None:
        return fmt.DASH, fmt.DASH, fmt.DASH
    pending = _field(record, "pending")
    verdict = str(_field(record, "verdict") or Verdict.PENDING)
    running = verdict in fmt.UNDECIDED
    if not isinstance(pending, set | frozenset | list | tuple):  # a record without them
        if running or verdict != Verdict.PASS:
            return str(n), fmt.DASH, fmt.DASH
        pending = ()  # passed: every held message was handled
    waiting = len(pending)
    if running:
        lost = fmt.DASH
    elif lost_overall is None:
        lost = fmt.DASH if waiting else "0"
    else:
        lost = str(min(waiting, lost_overall))
    return str(n), str(n - waiting), lost


class DrillReport(RowTable):
    """Drills run so far (scripted and interactive), newest first."""

    BORDER_TITLE = "Drills"
    DROP_ORDER = ("target", "detected", "held")
    COLUMNS = (
        ("drill", "drill", 14),
        ("target", "target", 6),
        ("held", "held", 4),
        ("recovered", "back", 4),
        ("lost", "lost", 4),
        ("detected", "detect", 6),
        ("took", "recover", 7),
        ("verdict", "verdict", 7),
    )

    def __init__(
        self, palette: Palette, t0: float, *, id: str | None = None, can_run: bool = True
    ) -> None:
        """`can_run`: `d` runs a drill here (not in a replay or with --read-only)."""
        super().__init__(id=id)
        self.palette = palette
        self.t0 = t0
        self.can_run = can_run

    def update_from(self, records: Sequence[Any], lost: int | None = None) -> None:
        """Show the drill records, newest first; one still running shows as pending.
        `lost`: the loss checker's count now (None: no checker)."""
        rows: dict[str, tuple[Hashable, ...]] = {}
        for i in range(len(records) - 1, -1, -1):
            r = records[i]
            verdict = _field(r, "verdict") or Verdict.PENDING
            held, back, gone = counts(r, lost)
            rows[str(i)] = (
                str(_field(r, "name", "action") or "?"),
                str(_field(r, "target", "requested") or fmt.DASH),
                held,
                back,
                gone,
                _secs(_field(r, "detected_after_s", "detected_after")),
                _secs(_field(r, "recovered_after_s", "recovered_after")),
                str(verdict),
            )
        self.sync(rows)
        passed = sum(1 for r in rows.values() if fmt.VERDICT_ROLES.get(str(r[-1]).lower()) == "ok")
        none = "d to run one" if self.can_run else "none run yet"
        self.subtitle(f"{len(rows)} run, {passed} passed" if rows else none)

    def render_cell(self, column: str, raw: Hashable) -> Text:
        """Verdicts are coloured, a loss in red; targets are untrusted ids."""
        if column == "verdict":
            return fmt.verdict(self.palette, str(raw))
        if column == "lost":
            bad = raw not in ("0", fmt.DASH)
            return fmt.number(str(raw), Style(color=self.palette.bad if bad else None, bold=bad))
        if column in ("detected", "took", "held", "recovered"):
            return fmt.number(str(raw))
        return fmt.untrusted(raw, {"drill": 14, "target": 6}.get(column, 200))
