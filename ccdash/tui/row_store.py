"""The rows of a RowTable: kept by key as raw values and rendered cells, filtered and
sorted into the order shown, with the selection that follows its row by key.

A cell is formatted when it is first needed (drawn, filtered, read), not when its value
changes: a refresh under load (64 consumers whose counts all move) formats the rows on
screen, and a theme change formats the log lines on screen, not all 500.

`RowPainter` (row_painter.py) draws them; `RowTable` (row_table.py) adds the keys,
the cursor and the clicks.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ccdash.tui.format import sort_value

Column = tuple[str, str, int]  # key, label, width in cells (the last column stretches)


class RowStore(ScrollView):
    """The rows and their order; subclasses set COLUMNS and implement `render_cell`."""

    COLUMNS: ClassVar[Sequence[Column]] = ()

    cursor_row: reactive[int] = reactive(0)

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
        self._cells: dict[str, list[Text | None]] = {}  # None: not formatted since it changed
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
        """Show `rows` in their order: new keys appear, gone keys leave, changed cells are
        formatted again when next needed; then filter and sort. Returns True if the rows
        shown came or went."""
        width = len(self.spec)
        for key in [k for k in self._raw if k not in rows]:
            del self._raw[key], self._cells[key]
        dirty = False
        for key, raw in rows.items():
            old = self._raw.get(key)
            if old == raw:
                continue
            if len(raw) != width:
                raise ValueError(f"{len(raw)} values for {width} columns")
            if old is None:
                self._cells[key] = [None] * width
            else:
                cells = self._cells[key]
                for i, (v, was) in enumerate(zip(raw, old, strict=True)):
                    if v != was:
                        cells[i] = None
            self._raw[key] = raw
            self._strips.pop((key, False, self.size.width), None)
            self._strips.pop((key, True, self.size.width), None)
            dirty = True
        self._given = list(rows)
        changed = self._arrange()
        if not changed and dirty:
            self.refresh()
        return changed

    def cells(self, key: str) -> list[Text]:
        """A row's cells, formatting those not formatted since they changed."""
        cells = self._cells[key]
        if None in cells:
            raw = self._raw[key]
            for i, cell in enumerate(cells):
                if cell is None:
                    cells[i] = self.render_cell(self.spec[i][0], raw[i])
        return cells  # type: ignore[return-value]  # (no None left)

    def _arrange(self) -> bool:
        """Filter and sort the given rows into the shown order; the cursor follows its key."""
        keep = self.selected_key()
        order = self._given
        if self.filter_text:
            needle = self.filter_text.casefold()
            order = [k for k in order if any(needle in c.plain.casefold() for c in self.cells(k))]
        if self.sort_by is not None and self.sort_by in (c[0] for c in self.spec):
            i = [c[0] for c in self.spec].index(self.sort_by)
            order = sorted(
                order, key=lambda k: sort_value(self._raw[k][i]), reverse=self.sort_reverse
            )
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
        return [cell.plain for cell in self.cells(key)] if key in self._cells else []

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
