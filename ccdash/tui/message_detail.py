"""One dead letter in full: payload (escaped) and its delivery history."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ccdash.brokers.base import DeadLetter
from ccdash.text import body_text
from ccdash.tui import format as fmt
from ccdash.tui.format import Palette

BODY_LIMIT = 16_000  # characters of the payload shown; the size says how much there is
# A Redis consumer is `worker/cid` with the worker named host-pid-tag: 12 cells cut it
# to the host's name, which says nothing about which consumer it was.
CONSUMER_WIDTH = 48


def _size(body: object) -> str:
    if isinstance(body, bytes | bytearray | memoryview):
        return f"{len(bytes(body))} bytes, binary"
    if isinstance(body, str):
        return f"{len(body)} characters, JSON string"
    return f"JSON {type(body).__name__}"


class MessageDetail(ModalScreen[None]):
    """A dead letter's payload and history; Esc closes."""

    BINDINGS = [Binding("escape,enter", "dismiss", "Close", id="detail.close")]

    def __init__(self, letter: DeadLetter, palette: Palette, t0: float) -> None:
        super().__init__()
        self.letter = letter
        self.palette = palette
        self.t0 = t0

    def compose(self) -> ComposeResult:
        """Summary, payload, history: all literal text."""
        d, p = self.letter, self.palette
        summary = Text(no_wrap=False, end="")
        summary.append("message  ", p.muted)
        summary.append_text(fmt.untrusted(d.message_id, 60))
        summary.append(
            f"\nreason   {d.reason}   attempts {d.attempts}   priority "
            f"{d.priority}   dead at {fmt.clock_offset(d.dead_at - self.t0)}\n",
            p.muted,
        )
        summary.append("error    ", p.muted)
        summary.append_text(fmt.untrusted(d.last_error, 200, p.bad))
        body = Text(body_text(d.body, BODY_LIMIT, pretty=True), end="")
        history = Table(box=None, expand=True, show_edge=False, header_style=p.muted)
        for col in ("when", "consumer", "try", "outcome", "error"):
            history.add_column(col, no_wrap=True, overflow="ellipsis")
        for h in d.history:
            history.add_row(
                fmt.plain(fmt.clock_offset(h.at - self.t0)),
                fmt.untrusted(h.consumer_id, CONSUMER_WIDTH),
                fmt.plain(str(h.attempt)),
                fmt.untrusted(h.outcome, 16),
                fmt.untrusted(h.error, 80, p.bad),
            )
        with VerticalScroll(id="detail"):
            yield Static(summary, id="detail-summary", markup=False)
            yield Static(Text(f"payload ({_size(d.body)})", style=p.muted), markup=False)
            yield Static(body, id="detail-body", markup=False)
            yield Static(
                Text(f"delivery history ({len(d.history)} failed deliveries)", style=p.muted),
                markup=False,
            )
            yield Static(history, id="detail-history", markup=False)

    def on_mount(self) -> None:
        """Title the box with the message id."""
        box = self.query_one("#detail")
        box.border_title = "Dead letter"
        box.border_subtitle = "Esc to close"
