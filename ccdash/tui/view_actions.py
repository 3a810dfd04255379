"""What the screen shows: the layout of the size class (ccdash/tui/layout.py) applied
to the panes, and the operator's view commands: panes, zoom, filter, sort, find a
message, theme.

None of the commands changes the engine, so read-only mode lets them all through. A
base of the dashboard app, like `Operations` (which it extends); the app supplies the
state read on each tick.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from ccdash.engine import AlertState
from ccdash.text import sanitize
from ccdash.tui.command_base import guarded
from ccdash.tui.feed import ScreenState
from ccdash.tui.format import Palette
from ccdash.tui.header_bar import HeaderBar
from ccdash.tui.layout import ALL_PANES, DETAIL_PANES, MIN_SIZE, plan, size_class, urgency
from ccdash.tui.message_detail import MessageDetail
from ccdash.tui.operations import Operations
from ccdash.tui.prompt import Prompt
from ccdash.tui.row_table import RowTable


def _check_filter(text: str) -> str | None:
    return None if len(text) <= 80 else "at most 80 characters"


MAX_ID = 200  # characters `:` takes: far more than any broker's message id


def _check_id(text: str) -> str | None:
    """Why `text` is no id to look up (one line that fits the prompt), or None."""
    n = len(text.strip())
    if n == 0:
        return "type a message id (as the panes show it)"
    if n > MAX_ID:
        return f"too long: {n} characters; a message id has at most {MAX_ID}"
    return None


class ViewActions(Operations):
    """Keys that change what the screen shows, never what the engine does."""

    main_screen: Any
    state: ScreenState | None
    clock: Any
    _shown: tuple[object, ...]
    _dead_changed_at: float | None
    pinned: str | None
    zoomed: str | None
    log_hidden: bool
    ccdash_themes: dict[str, Any]
    theme_name: str
    t0: float

    # -- the layout: which panes show, in what grid ---------------------------------

    def _ranked(self) -> list[str]:
        """Detail panes, most urgent first (the operator's pinned choice leads)."""
        state = self.state
        if state is None:
            ranked = list(urgency((), 0, False, None, 0, self.clock.now()))
        else:
            snap = state.snap
            firing = sum(1 for a in snap.alerts if a.state == AlertState.FIRING)
            ranked = urgency(
                state.drills,
                firing,
                bool(snap.alerts),
                self._dead_changed_at,
                snap.queue.dead,
                snap.at,
            )
        if self.pinned is not None:
            ranked.remove(self.pinned)
            ranked.insert(0, self.pinned)
        return ranked

    def _layout(self, size: Any = None) -> None:
        """Apply the size class's plan: which panes show, in what grid."""
        screen = getattr(self, "main_screen", None)
        if screen is None:
            return
        width, height = size or self.size
        kind = size_class(width, height)
        for name in ("tiny", "small", "medium", "wide"):
            screen.set_class(kind == name, f"-{name}")
        if kind == "tiny":
            self.query_one("#too-small", Static).update(
                Text(
                    f"terminal too small: ccdash needs at least {MIN_SIZE[0]}x{MIN_SIZE[1]}, "
                    f"this one is {width}x{height}\n(q quits)"
                )
            )
            self.refresh_bindings()
            return
        ranked = self._ranked()
        # The body gets what the header, footer, banner (and a replay's bar) leave.
        others = [w for w in screen.children if w.id not in ("body", "too-small") and w.display]
        body_height = height - sum(max(1, w.outer_size.height) for w in others)
        autoscale = self.state is not None and self.state.snap.autoscale
        p = plan(
            kind,
            body_height,
            self.consumers.row_count,
            ranked[0],
            ranked[1],
            zoomed=self.zoomed,
            log_hidden=self.log_hidden,
            autoscale=autoscale,
        )
        key = (kind, body_height, p)
        if key == self._shown:
            return
        self._shown = key
        body = self.query_one("#body")
        body.styles.grid_size_columns = p.columns
        body.styles.grid_rows = " ".join(p.rows)
        spans = dict(p.shown)
        focused = self.focused
        for name in ALL_PANES:
            pane = self.query_one(f"#{name}")
            pane.display = name in spans
            pane.styles.column_span = spans.get(name, 1)
            base = type(pane).BORDER_TITLE
            key_hint = {
                "consumers": 1,
                "alerts": 4,
                "drills": 5,
                "dead": 3,
                "leases": 2,
                "log": 6,
            }.get(name)
            zoom = " (f: back)" if self.zoomed == name else ""
            pane.border_title = f"{key_hint} {base}{zoom}" if key_hint else base
        if focused is not None and not self._visible(focused):
            self.consumers.focus()
        self.refresh_bindings()

    def _visible(self, widget: Any) -> bool:
        node = widget
        while node is not None and node is not self.main_screen:
            if not node.display:
                return False
            node = node.parent
        return True

    def _panes(self) -> list[Any]:
        return [self.query_one(f"#{n}") for n in ALL_PANES]

    def _focused_pane(self) -> Any:
        node: Any = self.focused
        while node is not None and getattr(node, "id", None) not in ALL_PANES:
            node = node.parent
        return node

    def _focused_table(self) -> RowTable:
        """The table the operator is in (the consumers when focus is elsewhere)."""
        pane = self._focused_pane()
        return pane if isinstance(pane, RowTable) else self.consumers

    def action_show_pane(self, name: str) -> None:
        """Show a pane (small terminals: in the detail slot) and focus it; `auto`: let
        the detail slot follow the most urgent pane again."""
        if name == "auto":
            self.pinned = None
            self.say("the detail pane follows what is most urgent")
            return
        if name in DETAIL_PANES:
            self.pinned = name
        if self.zoomed is not None and self.zoomed != name:
            self.zoomed = None
        if name == "log":
            self.log_hidden = False
        self._layout()
        self.query_one(f"#{name}").focus()

    def action_toggle_log(self) -> None:
        """Wide: show or hide the log row; smaller: show the log in the detail slot."""
        if self.main_screen.has_class("-wide"):
            self.log_hidden = not self.log_hidden
            self._layout()
        else:
            self.action_show_pane("log")

    def action_next_pane(self) -> None:
        """Show the next detail pane (and focus it)."""
        current = self._ranked()[0]
        self.action_show_pane(DETAIL_PANES[(DETAIL_PANES.index(current) + 1) % len(DETAIL_PANES)])

    def action_zoom(self) -> None:
        """The focused pane on the whole body, or back to the layout."""
        if self.zoomed is not None:
            name, self.zoomed = self.zoomed, None
        else:
            pane = self._focused_pane()
            self.zoomed = name = pane.id if pane is not None else "consumers"
        self._layout()
        self.query_one(f"#{name}").focus()

    @guarded
    def action_filter(self) -> None:
        """Ask for a text; the focused table shows only the rows containing it."""
        table = self._focused_table()
        title = type(table).BORDER_TITLE

        def done(value: str | None) -> None:
            if value is None:
                return
            n = table.set_filter(value)
            self.say(
                f"{title}: {n} of {table.total_count} rows contain {value.strip()!r}"
                if value.strip()
                else f"{title}: filter cleared"
            )

        self.push_screen(
            Prompt(
                f"Filter {title} (rows containing; empty shows all)",
                table.filter_text,
                _check_filter,
            ),
            self.guard(done),
        )

    @guarded
    def action_sort(self) -> None:
        """Sort the focused table by its next column."""
        table = self._focused_table()
        self.say(f"{type(table).BORDER_TITLE}: {table.next_sort()}")

    @guarded
    def action_find(self) -> None:
        """Ask for a message id; say where it is now (a dead one opens with its history)."""

        def done(value: str | None) -> None:
            if value is None:
                return
            where = self.locate(value.strip())
            if isinstance(where, str):
                self.say(where)
                # An answer, not a confirmation: whole, even where the log is hidden
                # (80x24) or too narrow for it.
                self.notify(sanitize(where, 500), title="find", markup=False, timeout=12)
            else:
                self.say(f"{value.strip()}: dead-lettered ({where.reason}); its history opens")
                self.push_screen(MessageDetail(where, self.palette, self.t0))

        self.push_screen(Prompt("Find a message by id", "", _check_id), self.guard(done))

    def locate(self, mid: str) -> Any:
        """Where `mid` is now: a DeadLetter, or one line of text."""
        locate = getattr(self.feed, "locate", None)  # type: ignore[attr-defined]
        if locate is None:
            return f"{mid}: this view cannot look messages up"
        return locate(mid)

    def action_next_theme(self) -> None:
        """Cycle through the ccdash themes."""
        names = list(self.ccdash_themes)
        self.theme_name = (
            names[(names.index(self.theme_name) + 1) % len(names)]
            if self.theme_name in names
            else names[0]
        )
        self.theme = self.theme_name
        self.palette = Palette.from_theme(self.ccdash_themes[self.theme_name])
        for w in [self.query_one(HeaderBar), *self._panes()]:
            w.palette = self.palette
            if hasattr(w, "invalidate"):
                w.invalidate()
        self.say(f"theme {self.theme_name}")


__all__ = ["ViewActions"]
