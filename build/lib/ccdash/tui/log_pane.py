"""The log pane: engine events and operator actions, one literal line each (`v` hides it)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from ccdash.tui import format as fmt
from ccdash.tui.format import Palette

_BAD = ("failed", "dead-lettered", "alert-firing", "restart-limit", "crashed", "error")
_GOOD = ("replaced", "alert-resolved", "redriven", "resumed", "started")


class LogPane(RichLog):
    """A bounded scrolling log; markup is never parsed."""

    BORDER_TITLE = "Log"

    def __init__(self, palette: Palette, t0: float, *, id: str | None = None) -> None:
        super().__init__(
            id=id, max_lines=500, wrap=False, markup=False, highlight=False, auto_scroll=True
        )
        self.palette = palette
        self.t0 = t0
        self.lines_written = 0

    def add(self, at: float, kind: str, message: str, *, operator: bool = False) -> None:
        """Append one event line: time, kind, message (sanitised, coloured by kind)."""
        p = self.palette
        if operator:
            color = p.accent
        elif any(k in kind for k in _BAD):
            color = p.bad
        elif any(k in kind for k in _GOOD):
            color = p.ok
        else:
            color = p.muted
        line = Text(no_wrap=True, end="")
        line.append(f"{fmt.clock_offset(at - self.t0):>8} ", p.muted)
        line.append_text(fmt.untrusted(kind, 20, color))
        line.append(" " * max(1, 21 - len(kind[:20])))
        line.append_text(fmt.untrusted(message, 240))
        self.write(line)
        self.lines_written += 1
