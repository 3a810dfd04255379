"""The queue pane's autoscaler line: arrivals now against the forecast, and the last decision."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from ccdash.engine.snapshot import AutoscalerView, Snapshot
from ccdash.tui import format as fmt
from ccdash.tui.format import Palette

CLOSE_ENOUGH = 0.2  # a forecast within 20% of what came counts as on target
STALE_AFTER = 3.0  # seconds: an older decision is shown with its age


def decision_text(view: AutoscalerView, now: float) -> str:
    """`4→6 (backlog)`, `held 4, wants 6 (cooldown)`, `kept 4 (stabilising)`; the age
    only once it is stale (the autoscaler decides every second or so while on)."""
    d = view.last
    if d is None:
        return "none yet"
    if d.applied != d.current:
        what = f"{d.current}→{d.applied} ({d.reason})"
    elif d.desired != d.current:
        what = f"held {d.current}, wants {d.desired} ({d.reason})"
    else:
        what = f"kept {d.current} ({d.reason})"
    age = now - d.at
    return f"{what} {fmt.duration(float(int(age)))} ago" if age >= STALE_AFTER else what


class ForecastLine(Static):
    """One line, shown while the autoscaler is on (the pane toggles it with the flag)."""

    def __init__(self, palette: Palette, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self.palette = palette
        self._last: tuple[object, ...] = ()

    def update_from(self, snap: Snapshot) -> None:
        """Redraw if what is shown changed."""
        view = snap.autoscaler
        if view is None:
            return
        d = view.last
        key = (
            round(snap.publish_rate),
            None if view.forecast_for_now is None else round(view.forecast_for_now),
            None if d is None else (d.at, round(d.forecast_rate)),
            decision_text(view, snap.at),
            self.palette,
        )
        if key == self._last:
            return
        self._last = key
        self.update(self.line_text(view, snap.publish_rate, snap.at), layout=False)

    def line_text(self, view: AutoscalerView, arrivals: float, now: float) -> Text:
        """`arrivals 42/s vs forecast 40/s  in 10s 55/s  last 4→5 (forecast)`."""
        p = self.palette
        label, value = Style(color=p.muted), Style(bold=True)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append("arrivals ", label)
        text.append(fmt.rate(arrivals), value)
        if view.forecast_for_now is not None:
            was = view.forecast_for_now
            off = abs(was - arrivals) / max(arrivals, was, 1.0)
            text.append(" vs forecast ", label)
            text.append(
                fmt.rate(was), Style(bold=True, color=p.ok if off <= CLOSE_ENOUGH else p.warn)
            )
        if view.last is not None:
            text.append(f"  in {view.horizon:g}s ", label)
            text.append(fmt.rate(view.last.forecast_rate), Style(bold=True, color=p.info))
            if not view.predictive:
                text.append(" (shown only)", label)
        text.append("  last ", label)
        text.append(decision_text(view, now), Style(color=p.accent))
        return text
