"""The dead-letter pane: each dead message, or one line per error fingerprint (`g`):
the error with its ids, numbers, hex and quoted values masked, so a thousand poison
messages of one bug are one group (count, first and last seen, an example)."""

from __future__ import annotations

from collections.abc import Hashable

from rich.text import Text
from textual.message import Message

from ccdash.brokers.base import REASON_CONSUMER_FAILED, DeadLetter
from ccdash.engine.snapshot import Snapshot
from ccdash.tui import format as fmt
from ccdash.tui.fingerprint import fingerprint
from ccdash.tui.format import Palette
from ccdash.tui.row_table import RowTable

LIST_COLUMNS = (
    ("message", "message", 14),
    ("reason", "reason", 15),
    ("attempts", "try", 3),
    ("error", "last error", 34),
)
GROUP_COLUMNS = (
    ("count", "count", 5),
    ("first", "first", 8),  # fmt.clock_offset: at most 8 cells
    ("last", "last", 8),
    ("example", "example", 10),
    ("error", "error (ids, numbers masked)", 36),
)


class DeadLetterTable(RowTable):
    """Dead letters, newest first; Enter opens one with its delivery history."""

    BORDER_TITLE = "Dead letters"
    COLUMNS = LIST_COLUMNS
    DROP_ORDER = ("reason", "example", "first", "attempts")

    class Opened(Message):
        """The operator asked to see a dead letter in full."""

        def __init__(self, letter: DeadLetter) -> None:
            super().__init__()
            self.letter = letter

    def __init__(self, palette: Palette, t0: float = 0.0, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette = palette
        self.t0 = t0
        self.grouped = False
        self.letters: dict[str, DeadLetter] = {}
        self.groups: dict[str, list[str]] = {}  # fingerprint -> message ids, newest first

    def toggle_grouped(self) -> bool:
        """Switch between the list and the by-error view; returns the new mode."""
        self.grouped = not self.grouped
        self.set_columns(GROUP_COLUMNS if self.grouped else LIST_COLUMNS)
        return self.grouped

    def update_from(self, snap: Snapshot) -> None:
        """Show the snapshot's dead letters (the newest ones the snapshot carries)."""
        letters = {d.message_id: d for d in snap.dead_letters}
        groups: dict[str, list[str]] = {}
        if self.grouped:  # (six regular expressions per error: only when they are shown)
            for d in snap.dead_letters:  # newest first
                groups.setdefault(fingerprint(d.last_error), []).append(d.message_id)
        self.letters, self.groups = letters, groups
        rows: dict[str, tuple[Hashable, ...]] = {}
        if self.grouped:
            for error, ids in groups.items():
                times = [letters[i].dead_at for i in ids]
                rows["e:" + error] = (
                    len(ids),
                    fmt.clock_offset(min(times) - self.t0),
                    fmt.clock_offset(max(times) - self.t0),
                    ids[0],
                    error,
                )
        else:
            for d in snap.dead_letters:
                rows[d.message_id] = (d.message_id, d.reason, d.attempts, d.last_error)
        self.sync(rows)
        shown = len(snap.dead_letters)
        total = snap.queue.dead
        note = f"{total} dead" + (f", newest {shown} shown" if shown < total else "")
        if self.grouped:
            note += f", {len(groups)} distinct errors"
        self.subtitle(note)

    def render_cell(self, column: str, raw: Hashable) -> Text:
        """Ids, reasons and errors are untrusted: literal and sanitised."""
        p = self.palette
        if column in ("count", "attempts"):
            return fmt.number(str(raw))
        if column in ("first", "last"):
            return fmt.plain(str(raw), p.muted)
        width = 200 if column == "error" else dict((k, w) for k, _, w in self.spec)[column]
        if column in ("message", "example"):  # ids: the end tells them apart
            return fmt.untrusted_id(raw, width)
        style = p.bad if column == "reason" and raw == REASON_CONSUMER_FAILED else ""
        return fmt.untrusted(raw, width, style)

    def selected_ids(self) -> list[str]:
        """The selected message, or every message of the selected error group."""
        key = self.selected_key()
        if key is None:
            return []
        if self.grouped:
            return list(self.groups.get(key[2:], []))
        return [key] if key in self.letters else []

    def activate(self, key: str) -> None:
        """Enter: open the selected message (a group's example: its newest)."""
        ids = self.selected_ids()
        if ids and ids[0] in self.letters:
            self.post_message(self.Opened(self.letters[ids[0]]))
