"""A modal yes/no question for actions on many messages (redrive all, purge)."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from ccdash.tui.dialog_fit import fit_dialog


class Confirm(ModalScreen[bool]):
    """`y` confirms; `n` or Esc declines."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        """The question and the keys that answer it."""
        with Vertical(id="confirm"):
            yield Static(Text(self.question), markup=False, id="confirm-question")
            yield Static(Text("y = yes    n / Esc = no"), markup=False, id="confirm-keys")

    def on_mount(self) -> None:
        """A terminal below the minimum: fill it (dialog_fit.py)."""
        fit_dialog(self, self.app.size)

    def on_resize(self, event: events.Resize) -> None:
        """The same on a new size."""
        fit_dialog(self, event.size)

    def action_answer(self, yes: bool) -> None:
        """Close with the answer."""
        self.dismiss(yes)
