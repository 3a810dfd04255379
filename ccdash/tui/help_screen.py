"""The help screen: every key and what it does."""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ccdash.tui.format import Palette
from ccdash.tui.keys import KEYS, PANE_KEYS, Key, key_label


def key_table(palette: Palette, keys: Sequence[Key] = KEYS) -> Table:
    """The key table as a Rich table: key, then command and what it does."""
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
        """One scrollable table."""
        with VerticalScroll(id="help"):
            yield Static(
                Text(
                    "Selected consumer = the row under the cursor in the Consumers pane.",
                    style=self.palette.muted,
                ),
                markup=False,
            )
            yield Static(key_table(self.palette, self.keys), markup=False)

    def on_mount(self) -> None:
        """Title the box."""
        box = self.query_one("#help")
        box.border_title = "ccdash keys"
        box.border_subtitle = "Esc to close"
