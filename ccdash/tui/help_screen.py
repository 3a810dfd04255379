"""The help screen: every key on one screen (grouped, two columns, fits 80x24), then
each command with what it does, further down (the border says to scroll)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ccdash.tui.format import Palette
from ccdash.tui.key_spec import Key, key_label
from ccdash.tui.keys import KEYS, PANE_KEYS

PANE_PREFIX = "view.pane_"  # 1..6 and 0: one summary line for all of them


def _area(k: Key) -> str:
    return k.title.split(":", 1)[0]


def summary_lines(palette: Palette, keys: Sequence[Key] = KEYS) -> list[Text]:
    """One line per key: area (on a group's first line), key, command."""
    key_style = Style(color=palette.accent, bold=True)
    area_style = Style(color=palette.primary, bold=True)
    lines: list[Text] = []
    for area, group in groupby(keys, key=_area):
        first = True
        for k in group:
            if k.id.startswith(PANE_PREFIX) and k.id != PANE_PREFIX + "consumers":
                continue
            line = Text(end="")
            line.append(f"{area if first else '':<10}", area_style)
            first = False
            if k.id.startswith(PANE_PREFIX):
                line.append("1-6", key_style)  # 1..6 show a pane, 0 the most urgent
                line.append(" pane; 0 most urgent")
            else:
                line.append(f"{key_label(k):>3}", key_style)
                line.append(" " + k.title.split(": ", 1)[-1])
            lines.append(line)
    return lines


def summary_table(palette: Palette, keys: Sequence[Key] = KEYS) -> Table:
    """The summary lines in two columns."""
    lines = summary_lines(palette, keys)
    half = (len(lines) + 1) // 2
    left, right = lines[:half], lines[half:]
    table = Table(box=None, expand=True, show_header=False, show_edge=False, pad_edge=False)
    table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    for i in range(half):
        table.add_row(left[i], right[i] if i < len(right) else "")
    return table


def key_table(palette: Palette, keys: Sequence[Key] = KEYS) -> Table:
    """Every key with its command and what it does."""
    table = Table(box=None, expand=True, show_header=False, show_edge=False, pad_edge=False)
    table.add_column("key", no_wrap=True, min_width=5, style=Style(color=palette.accent, bold=True))
    table.add_column("what it does", ratio=1)
    for k in keys:
        line = Text(k.title, style=Style(bold=True))
        line.append("  " + k.help, style=Style(color=palette.muted))
        table.add_row(key_label(k), line)
    table.add_row("", "")
    for key, what in PANE_KEYS:
        table.add_row(key, Text(what, style=Style(color=palette.muted)))
    return table


class HelpScreen(ModalScreen[None]):
    """Keys and what they do; Esc, ? or q closes."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close")]

    def __init__(self, palette: Palette, *, keys: Sequence[Key] = KEYS) -> None:
        super().__init__()
        self.palette = palette
        self.keys = keys

    def compose(self) -> ComposeResult:
        """The summary, then the full table, in one scrollable box."""
        with VerticalScroll(id="help"):
            yield Static(summary_table(self.palette, self.keys), markup=False, id="help-summary")
            yield Static(
                Text(
                    "What each command does (the selected consumer is the row under the "
                    "cursor in the Consumers pane):",
                    style=self.palette.muted,
                ),
                markup=False,
            )
            yield Static(key_table(self.palette, self.keys), markup=False)

    def on_mount(self) -> None:
        """Title the box; the subtitle says there is more below."""
        box = self.query_one("#help")
        box.border_title = "ccdash keys"
        box.border_subtitle = "↓ scroll for what each does · Esc closes"
