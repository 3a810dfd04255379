"""A DataTable diffed by row key: each refresh touches only the cells that changed."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar

from rich.console import RenderableType
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist


class KeyedTable(DataTable[Any]):
    """Rows are given as raw, hashable values per cell; only changed cells re-render.

    Subclasses set COLUMNS (key, label, width) and implement `render_cell`; rows
    added later go at the bottom.
    """

    COLUMNS: ClassVar[Sequence[tuple[str, str, int]]] = ()

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self._raw: dict[str, tuple[Hashable, ...]] = {}
        self.spec: Sequence[tuple[str, str, int]] = ()
        self.set_columns(self.COLUMNS)

    def set_columns(self, spec: Sequence[tuple[str, str, int]]) -> None:
        """Replace the columns (and drop every row)."""
        self._raw.clear()
        self.clear(columns=True)
        self.spec = spec
        for key, label, width in spec:
            self.add_column(label, width=width, key=key)

    def render_cell(self, column: str, raw: Hashable) -> RenderableType:
        """Turn one raw cell value into what is shown."""
        raise NotImplementedError

    def sync(self, rows: Mapping[str, tuple[Hashable, ...]]) -> bool:
        """Make the table show `rows` (in their order for new rows); True if rows came or went."""
        columns = [c[0] for c in self.spec]
        changed = False
        for key in [k for k in self._raw if k not in rows]:
            del self._raw[key]
            try:
                self.remove_row(key)
            except RowDoesNotExist:
                pass
            changed = True
        for key, raw in rows.items():
            old = self._raw.get(key)
            if old is None:
                self.add_row(*(self.render_cell(c, v) for c, v in zip(columns, raw, strict=True)),
                             key=key)
                changed = True
            elif old != raw:
                for c, v, was in zip(columns, raw, old, strict=True):
                    if v != was:
                        try:
                            self.update_cell(key, c, self.render_cell(c, v))
                        except (CellDoesNotExist, RowDoesNotExist):
                            pass
            self._raw[key] = raw
        return changed

    def invalidate(self) -> None:
        """Re-render every cell at the next sync (after a theme change)."""
        self._raw.clear()
        self.clear()

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if self.row_count == 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except (CellDoesNotExist, RowDoesNotExist):
            return None
        return row_key.value

    def raw_row(self, key: str) -> tuple[Hashable, ...] | None:
        """The raw values last shown for a row."""
        return self._raw.get(key)
