"""Drawing a RowTable with Textual's line API: each row's rendered strip is cached
until its values, its selection, the width or the styles change, and only visible
lines are drawn."""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.strip import Strip

from ccdash.tui.row_store import RowStore


class RowPainter(RowStore):
    """The header line and the rows, as cached strips; columns narrow panes leave out."""

    STRETCH: ClassVar[bool] = True  # the last column takes the spare width
    DROP_ORDER: ClassVar[tuple[str, ...]] = ()  # columns to leave out when the pane is narrow

    def _widths(self, width: int) -> list[int]:
        """Column widths for a pane `width` cells wide: the last column takes what is left;
        when they do not fit, DROP_ORDER's columns go first (width -1: not drawn)."""
        widths = [w for _, _, w in self.spec]
        keys = [k for k, _, _ in self.spec]
        for key in self.DROP_ORDER:
            if sum(w + 2 for w in widths if w >= 0) + 1 <= width:
                break
            if key in keys:
                widths[keys.index(key)] = -1
        if widths and self.STRETCH:
            spare = width - sum(w + 2 for w in widths if w >= 0) - 1  # one for the scrollbar
            last = max(i for i, w in enumerate(widths) if w >= 0)
            widths[last] += max(0, spare)
        return widths

    def _cell_segments(self, cell: Text, w: int) -> list[Segment]:
        """One cell padded to `w` cells (plus a space each side), as segments."""
        console = self.app.console
        if cell.cell_len > w:
            cell = cell.copy()
            cell.truncate(w, overflow="ellipsis")
        pad = w - cell.cell_len
        left = pad if cell.justify == "right" else 0
        if not cell.spans:  # the common case: one style for the whole cell
            style = console.get_style(cell.style) if cell.style else None
            return [
                Segment(" " * (1 + left)),
                Segment(cell.plain, style),
                Segment(" " * (1 + pad - left)),
            ]
        return [
            Segment(" " * (1 + left)),
            *cell.render(console, end=""),
            Segment(" " * (1 + pad - left)),
        ]

    def _row_strip(self, key: str, selected: bool, width: int) -> Strip:
        cached = self._strips.get((key, selected, width))
        if cached is not None:
            return cached
        segments: list[Segment] = []
        for w, cell in zip(self._widths(width), self.cells(key), strict=True):
            if w < 0:
                continue
            segments.extend(self._cell_segments(cell, w))
        base = self._base_style()
        post = self._cursor_style() if selected else None
        strip = Strip(Segment.apply_style(segments, base, post)).crop_extend(
            0, width, base + (post or Style())
        )
        self._strips[(key, selected, width)] = strip
        return strip

    def _base_style(self) -> Style:
        """The widget's own colours (computed once per style change, not per line)."""
        if self._style is None:
            self._style = self.rich_style
        return self._style

    def _cursor_style(self) -> Style:
        if self._cursor is None:
            bg = self.get_component_rich_style("row-table--cursor").bgcolor
            self._cursor = Style(bgcolor=bg)
        return self._cursor

    def _header_strip(self, width: int) -> Strip:
        if self._header is None or self._header.cell_length != width:
            style = self._base_style() + self.get_component_rich_style("row-table--header")
            arrow = "▼" if self.sort_reverse else "▲"
            labels = [
                label + arrow if key == self.sort_by else label for key, label, _ in self.spec
            ]
            text = "".join(
                f" {label[:w]:<{w}} "
                for label, w in zip(labels, self._widths(width), strict=True)
                if w >= 0
            )
            self._header = Strip([Segment(text, style)]).crop_extend(0, width, style)
        return self._header

    def render_line(self, y: int) -> Strip:
        """Line 0 is the header; the rest are rows from the scroll position on."""
        width = self.size.width
        if y == 0:
            return self._header_strip(width)
        index = self.scroll_offset.y + y - 1
        if index >= len(self._order):
            return Strip.blank(width, self._base_style())
        selected = index == self.cursor_row and not self.detached
        return self._row_strip(self._order[index], selected, width)

    def notify_style_update(self) -> None:
        """Styles changed (focus, theme): drop rendered strips."""
        super().notify_style_update()
        self._strips.clear()
        self._header = None
        self._style = self._cursor = None

    def on_resize(self, event: events.Resize) -> None:
        """New width: strips are rebuilt."""
        self._strips.clear()
        self._header = None
