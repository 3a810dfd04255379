"""Which panes the screen shows at which size, and which detail pane is most urgent.

Three size classes, so that at each one the operator sees at once the header
(with the loss count), the queue, as many consumers as fit, and the most urgent
of a running drill / a firing alert / a new dead letter:

- small (from 80x24): one column; queue counts, consumers, one detail pane;
- medium (from 120x36): queue, consumers, and two detail panes side by side;
- wide (from 160x45): every pane in two columns (queue beside consumers, alerts beside
  drills, dead letters beside leases), the log across the bottom.

Pure functions of numbers, so they are tested without a screen; the app applies
the plan to its grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ccdash.scenario.drill_record import Verdict
from ccdash.tui.format import UNDECIDED

MIN_SIZE = (80, 24)
MEDIUM_SIZE = (120, 36)
WIDE_SIZE = (160, 45)
DETAIL_PANES = ("leases", "dead", "alerts", "drills", "log")
ALL_PANES = ("queue", "consumers", "alerts", "drills", "dead", "leases", "log")  # grid order
RECENT = 30.0  # seconds a finished drill or a new dead letter stays "urgent"


def size_class(width: int, height: int) -> str:
    """tiny | small | medium | wide."""
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        return "tiny"
    if width >= WIDE_SIZE[0] and height >= WIDE_SIZE[1]:
        return "wide"
    if width >= MEDIUM_SIZE[0] and height >= MEDIUM_SIZE[1]:
        return "medium"
    return "small"


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, dict) else getattr(record, name, None)


def urgency(
    drills: Sequence[Any],
    firing_alerts: int,
    any_alerts: bool,
    dead_changed_at: float | None,
    dead: int,
    now: float,
) -> list[str]:
    """Detail panes, most urgent first: a running drill (or one that just ended), firing
    alerts, a new dead letter; then the drill report (live, it says `d to run one`)."""
    score = {
        "drills": 0.5,
        "alerts": 0.4 if any_alerts else 0.2,
        "log": 0.3,
        "leases": 0.1,
        "dead": 0.6 if dead else 0.0,
    }
    if drills:
        last = drills[-1]
        verdict = str(_field(last, "verdict") or Verdict.PENDING)
        fired = _field(last, "fired_at")
        recent = isinstance(fired, int | float) and now - fired < RECENT
        if verdict in UNDECIDED:
            score["drills"] = 3.0
        elif recent:
            score["drills"] = 2.5
    if firing_alerts:
        score["alerts"] = 2.0
    if dead and dead_changed_at is not None and now - dead_changed_at < RECENT:
        score["dead"] = 1.5
    return sorted(DETAIL_PANES, key=lambda p: -score[p])


@dataclass(frozen=True, slots=True)
class Plan:
    """What the grid shows: columns, row heights, and each shown pane with its span."""

    columns: int
    rows: tuple[str, ...]
    shown: tuple[tuple[str, int], ...]  # (pane, column span), in grid order

    def panes(self) -> list[str]:
        """The shown panes' names."""
        return [p for p, _ in self.shown]


def plan(
    kind: str,
    height: int,
    consumers: int,
    current: str,
    second: str,
    *,
    zoomed: str | None = None,
    log_hidden: bool = False,
    autoscale: bool = False,
) -> Plan:
    """The grid for a size class. `height`: rows for the body; `consumers`: rows the
    consumer table has; `current` / `second`: the detail panes to show first."""
    if zoomed is not None:
        return Plan(1, ("1fr",), ((zoomed, 1),))
    extra = 1 if autoscale else 0  # the autoscaler's forecast line
    if kind == "wide":
        bottom = 0 if log_hidden else 10
        c = _clamp(consumers + 3, 9 + extra, height - bottom - 16)
        rows = (str(c), "1fr", "1fr") + (() if log_hidden else (str(bottom),))
        shown = [(p, 1) for p in ALL_PANES if p != "log"]
        if not log_hidden:
            shown.append(("log", 2))
        return Plan(2, rows, tuple(shown))
    if kind == "medium":
        q = 5 + extra
        c = _clamp(consumers + 3, 5, height - q - 10)
        slots = {current, second}
        shown = [("queue", 2), ("consumers", 2)] + [(p, 1) for p in ALL_PANES if p in slots]
        return Plan(2, (str(q), str(c), "1fr"), tuple(_grid_order(shown)))
    q = 4 + extra
    c = _clamp(consumers + 3, 4, height - q - 7)
    shown = [("queue", 1), ("consumers", 1), (current, 1)]
    return Plan(1, (str(q), str(c), "1fr"), tuple(_grid_order(shown)))


def _grid_order(shown: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return sorted(shown, key=lambda s: ALL_PANES.index(s[0]))  # the grid fills in DOM order


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, max(low, high)))


__all__ = ["DETAIL_PANES", "MIN_SIZE", "Plan", "plan", "size_class", "urgency"]
