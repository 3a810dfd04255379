"""A modal one-line input with validation (a weight, a slow-down factor).

On a terminal smaller than the dashboard's minimum it fills the screen (dialog_fit.py)
and its input is one line: whatever the size, the input line is on screen, so it can
still be answered.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ccdash.tui.dialog_fit import fit_dialog


class Prompt(ModalScreen[str | None]):
    """Type a value and Enter; Esc cancels. `check` returns an error text or None."""

    BINDINGS = [Binding("escape", "dismiss", "Cancel", id="prompt.cancel")]

    def __init__(
        self, question: str, value: str = "", check: Callable[[str], str | None] | None = None
    ) -> None:
        super().__init__()
        self.question = question
        self.value = value
        self.check = check

    def compose(self) -> ComposeResult:
        """Question, input, and a line for what is wrong with the input."""
        with Vertical(id="prompt"):
            yield Static(Text(self.question), markup=False, id="prompt-question")
            yield Input(self.value, id="prompt-input", select_on_focus=True)
            yield Static("", markup=False, id="prompt-error")

    def on_mount(self) -> None:
        """Fit the size the terminal has now."""
        self._fit(self.app.size)

    def on_resize(self, event: events.Resize) -> None:
        """Fit the new size."""
        self._fit(event.size)

    def _fit(self, size: Size) -> None:
        """Below the minimum: the whole screen, a one-line input (dialog_fit.py)."""
        self.query_one("#prompt-input", Input).compact = fit_dialog(self, size)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Accept a valid value; say why an invalid one is refused."""
        event.stop()
        problem = self.check(event.value) if self.check else None
        if problem:
            self.query_one("#prompt-error", Static).update(Text(problem))
            return
        self.dismiss(event.value)
