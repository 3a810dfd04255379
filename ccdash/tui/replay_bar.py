"""The replay bar: play state, speed, replay time and position, and what the keys do."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from ccdash.record.player import Player
from ccdash.tui import format as fmt
from ccdash.tui.format import Palette

TRACK = 24  # cells of the position track


class ReplayBar(Static):
    """One line above the header: ▶/⏸, ×speed, time of total, frame i/n, a track."""

    DEFAULT_CSS = """
    ReplayBar { dock: top; height: 1; background: $accent 30%; text-wrap: nowrap;
                text-overflow: ellipsis; }
    """

    def __init__(self, palette: Palette, player: Player, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self.palette = palette
        self.player = player
        self._last: tuple[object, ...] = ()

    def update_from(self) -> None:
        """Redraw if the position, the play state or the speed changed."""
        pl, rec = self.player, self.player.recording
        key = (pl.playing, pl.speed, pl.index, round(pl.position, 1), self.palette)
        if key == self._last:
            return
        self._last = key
        p = self.palette
        total = rec.end - rec.t0
        now = pl.position - rec.t0
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        line.append(" REPLAY ", Style(color=p.primary, bold=True, reverse=True))
        line.append(" ▶ playing" if pl.playing else " ⏸ paused", Style(bold=True))
        line.append(f"  ×{pl.speed:g}", Style(color=p.accent, bold=True))
        line.append(f"  {fmt.clock_offset(now)} of {fmt.clock_offset(total)}", Style(bold=True))
        line.append(f"  frame {pl.index + 1}/{len(rec.frame_at)}  ", Style(color=p.muted))
        done = round(TRACK * (now / total)) if total > 0 else TRACK
        line.append("━" * done, Style(color=p.primary))
        line.append("─" * (TRACK - done), Style(color=p.muted))
        if rec.cut_short:
            line.append("  recording cut short", Style(color=p.warn, bold=True))
        line.append(
            "  space play · , . step · [ ] ±10s · < > speed · j jump · "
            "e/d/a/o next event/drill/alert/action (shift: back)",
            Style(color=p.muted),
        )
        self.update(line, layout=False)
