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

from collections.abc import Hashable, Mapping, Sequence
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ccdash.tui.format import sort_value

Column = tuple[str, str, int]  # key, label, width in cells (the last column stretches)


class RowTable(ScrollView, can_focus=True):
    """Rows by key with a sticky header line. Subclasses set COLUMNS, implement `render_cell`."""

    COLUMNS: ClassVar[Sequence[Column]] = ()
    STRETCH: ClassVar[bool] = True  # the last column takes the spare width
    DROP_ORDER: ClassVar[tuple[str, ...]] = ()  # columns to leave out when the pane is narrow
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

    cursor_row: reactive[int] = reactive(0)

    class Activated(Message):
        """Enter (or a second click) on a row."""

        def __init__(self, table: RowTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.spec: Sequence[Column] = self.COLUMNS
        self._raw: dict[str, tuple[Hashable, ...]] = {}
        self._given: list[str] = []  # every row key, in the caller's order
        self._order: list[str] = []  # the rows shown: filtered and sorted
        self.filter_text = ""
        self.sort_by: str | None = None  # a column key; None: the caller's order
        self.sort_reverse = False
        self.detached = False  # the selected row left: nothing is selected
        self.moved = False  # the operator chose a row: the cursor follows it by key
        self._note = ""
        self._cells: dict[str, list[Text]] = {}
        self._strips: dict[tuple[str, bool, int], Strip] = {}
        self._header: Strip | None = None
        self._style: Style | None = None  # rich_style, cached
        self._cursor: Style | None = None

    # -- content --------------------------------------------------------------

    def render_cell(self, column: str, raw: Hashable) -> Text:
        """Turn one raw cell value into what is shown."""
        raise NotImplementedError

    def set_columns(self, spec: Sequence[Column]) -> None:
        """Replace the columns (and drop every row)."""
        self.spec = spec
        self.invalidate()

    def invalidate(self) -> None:
        """Forget every row (a theme or column change): the next sync redraws all."""
        self._raw.clear()
        self._given.clear()
        self._order.clear()
        self._cells.clear()
        self._strips.clear()
        self._header = None
        self._resized()

    def sync(self, rows: Mapping[str, tuple[Hashable, ...]]) -> bool:
        """Show `rows` in their order: new keys appear, gone keys leave, changed cells
        re-render; then filter and sort. Returns True if the rows shown came or went."""
        columns = [c[0] for c in self.spec]
        for key in [k for k in self._raw if k not in rows]:
            del self._raw[key], self._cells[key]
        dirty = False
        for key, raw in rows.items():
            old = self._raw.get(key)
            if old == raw:
                continue
            if old is None:
                self._cells[key] = [
                    self.render_cell(c, v) for c, v in zip(columns, raw, strict=True)
                ]
            else:
                cells = self._cells[key]
                for i, (c, v, was) in enumerate(zip(columns, raw, old, strict=True)):
                    if v != was:
                        cells[i] = self.render_cell(c, v)
            self._raw[key] = raw
            self._strips.pop((key, False, self.size.width), None)
            self._strips.pop((key, True, self.size.width), None)
            dirty = True
        self._given = list(rows)
        changed = self._arrange()
        if not changed and dirty:
            self.refresh()
        return changed

    def _arrange(self) -> bool:
        """Filter and sort the given rows into the shown order; the cursor follows its key."""
        keep = self.selected_key()
        order = self._given
        if self.filter_text:
            needle = self.filter_text.casefold()
            order = [k for k in order
                     if any(needle in c.plain.casefold() for c in self._cells[k])]
        if self.sort_by is not None and self.sort_by in (c[0] for c in self.spec):
            i = [c[0] for c in self.spec].index(self.sort_by)
            order = sorted(order, key=lambda k: sort_value(self._raw[k][i]),
                           reverse=self.sort_reverse)
        if order == self._order:
            return False
        self._order = list(order)
        if not self.moved:
            keep = None  # untouched: the cursor stays on the top row (the newest)
        if keep is not None:
            if keep in self._order:
                self.cursor_row = self._order.index(keep)
            else:
                self.detached = True  # its row left: select nothing rather than a neighbour
        self._strips.clear()
        self._resized()
        return True

    def _resized(self) -> None:
        self.cursor_row = min(self.cursor_row, max(0, len(self._order) - 1))
        width = sum(w + 2 for _, _, w in self.spec)
        size = Size(width, len(self._order) + 1)
        if size != self.virtual_size:
            self.virtual_size = size
        self.refresh()

    # -- what callers read ------------------------------------------------------

    @property
    def row_count(self) -> int:
        """How many rows are shown (after the filter)."""
        return len(self._order)

    @property
    def total_count(self) -> int:
        """How many rows there are, filtered out or not."""
        return len(self._given)

    def set_filter(self, text: str) -> int:
        """Show only rows whose text contains `text` (any case; "" shows all); returns
        how many match."""
        self.filter_text = text.strip()
        self._arrange()
        if self.detached or self.selected_key() is None:
            self.move_cursor(row=0)  # the operator looks at the matches: select the first
        self._show_subtitle()
        return len(self._order)

    def sort_column(self, column: str | None, reverse: bool = False) -> None:
        """Sort by a column's values (None: the natural order, e.g. newest first)."""
        self.sort_by, self.sort_reverse = column, reverse
        self._header = None
        self._arrange()
        self.refresh()

    def next_sort(self) -> str:
        """Cycle the sort: each column ascending, then descending, then natural order;
        returns a description."""
        keys = [c[0] for c in self.spec]
        if self.sort_by is None:
            self.sort_column(keys[0])
        elif not self.sort_reverse:
            self.sort_column(self.sort_by, True)
        else:
            i = keys.index(self.sort_by) + 1 if self.sort_by in keys else len(keys)
            self.sort_column(keys[i] if i < len(keys) else None)
        if self.sort_by is None:
            return "natural order"
        label = dict((k, lab) for k, lab, _ in self.spec)[self.sort_by]
        return f"sorted by {label} {'descending' if self.sort_reverse else 'ascending'}"

    def row_keys(self) -> list[str]:
        """Row keys, top to bottom."""
        return list(self._order)

    def raw_row(self, key: str) -> tuple[Hashable, ...] | None:
        """The raw values last shown for a row."""
        return self._raw.get(key)

    def row_text(self, key: str) -> list[str]:
        """A row's cells as plain text (tests, captures)."""
        return [cell.plain for cell in self._cells.get(key, [])]

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if not self._order or self.detached:
            return None
        return self._order[min(self.cursor_row, len(self._order) - 1)]

    def move_cursor(self, *, row: int) -> None:
        """Put the cursor on row `row` (negative counts from the end)."""
        if self._order:
            self._reattach()
            self.cursor_row = row % len(self._order)

    def select_key(self, key: str) -> bool:
        """Put the cursor on the row with this key, if it is shown."""
        if key not in self._order:
            return False
        self._reattach()
        self.cursor_row = self._order.index(key)
        return True

    def _reattach(self) -> None:
        self.moved = True
        if self.detached:
            self.detached = False
            self._strips.clear()
            self.refresh()

    def get_row_index(self, key: str) -> int:
        """Position of a row by key."""
        return self._order.index(key)

    def subtitle(self, text: str) -> None:
        """Set the border subtitle (with the filter's match count) if it changed."""
        self._note = text
        self._show_subtitle()

    def _show_subtitle(self) -> None:
        text = self._note
        if self.filter_text:
            shown = f"/{self.filter_text}: {len(self._order)} of {len(self._given)}"
            text = f"{shown} · {text}" if text else shown
        if str(self.border_subtitle or "") != text:
            self.border_subtitle = text

    # -- drawing -------------------------------------------------------------------

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
        for w, cell in zip(self._widths(width), self._cells[key], strict=True):
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
            labels = [label + arrow if key == self.sort_by else label
                      for key, label, _ in self.spec]
            text = "".join(
                f" {label[:w]:<{w}} "
                for label, w in zip(labels, self._widths(width), strict=True) if w >= 0
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

    def on_resize(self, event: events.Resize) -> None:
        """New width: strips are rebuilt."""
        self._strips.clear()
        self._header = None


__all__ = ["Column", "RowTable"]
