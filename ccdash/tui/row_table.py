"""A keyed table drawn with Textual's line API, cheap enough to refresh under load.

Why not DataTable: any `update_cell` invalidates DataTable's whole render cache,
so every visible cell is re-rendered through Rich on every tick; with leases
churning thousands of times a second that cost the engine a fifth of its
throughput. Here each row is kept as raw values; a row whose values did not
change keeps its rendered strip, and only visible lines are drawn. Rows are
still diffed by key: new keys are added, gone keys removed, changed cells
re-rendered. A cursor row (arrows, PgUp/PgDn, Home/End, click) is the selection.

Rows show in the order the caller gives them (newest first, where that is the
order), unless the operator sorts by a column; a filter keeps the rows whose text
contains it. The cursor follows its row by key; when that row leaves, no row is
selected until the operator moves the cursor (a second `k` never hits a neighbour).
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding
from textual.message import Message

from ccdash.tui.row_painter import RowPainter
from ccdash.tui.row_store import Column


class RowTable(RowPainter, can_focus=True):
    """Rows by key with a sticky header line. Subclasses set COLUMNS, implement `render_cell`."""

    BINDINGS: ClassVar = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
        Binding("enter", "activate", "Open", show=False),
    ]
    COMPONENT_CLASSES: ClassVar = {"row-table--header", "row-table--cursor"}
    DEFAULT_CSS = """
    RowTable { scrollbar-size-vertical: 1; overflow-x: hidden; }
    RowTable > .row-table--header { color: $foreground-muted; text-style: bold; }
    RowTable > .row-table--cursor { background: $panel-lighten-1; }
    RowTable:focus > .row-table--cursor { background: $primary 35%; }
    """

    class Activated(Message):
        """Enter (or a second click) on a row."""

        def __init__(self, table: RowTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

    # -- the cursor ------------------------------------------------------------------

    def watch_cursor_row(self, old: int, new: int) -> None:
        """Repaint the two rows and keep the cursor in view."""
        width = self.size.width
        for i in (old, new):
            if i < len(self._order):
                self._strips.pop((self._order[i], i == old, width), None)
        visible = max(1, self.size.height - 1)
        top = self.scroll_offset.y
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + visible:
            self.scroll_to(y=new - visible + 1, animate=False)
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        """Move the cursor by `delta` rows (from nowhere: onto the row it was at)."""
        if self._order:
            if self.detached:
                delta = 0
            self._reattach()
            self.cursor_row = max(0, min(len(self._order) - 1, self.cursor_row + delta))

    def action_page(self, direction: int) -> None:
        """Move the cursor by a screenful."""
        self.action_cursor(direction * max(1, self.size.height - 2))

    def action_cursor_to(self, row: int) -> None:
        """Jump to the first (0) or last (-1) row."""
        self.move_cursor(row=row)

    def action_activate(self) -> None:
        """Enter: tell the app which row."""
        key = self.selected_key()
        if key is not None:
            self.activate(key)

    def activate(self, key: str) -> None:
        """A row was chosen; subclasses may act on it directly."""
        self.post_message(self.Activated(self, key))

    def on_click(self, event: events.Click) -> None:
        """Click selects a row; clicking the selected row again activates it."""
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:
            return
        index = self.scroll_offset.y + offset.y - 1
        if index < len(self._order):
            if index == self.cursor_row and event.chain > 1:
                self.activate(self._order[index])
            self._reattach()
            self.cursor_row = index


__all__ = ["Column", "RowTable"]
