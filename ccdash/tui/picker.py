"""A modal list to pick one of several choices (balancer, drill)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ccdash.text import sanitize
from ccdash.tui.dialog_fit import fit_dialog


class Picker(ModalScreen[str | None]):
    """Choose with the arrows and Enter; Esc cancels (result None)."""

    BINDINGS = [Binding("escape", "dismiss", "Cancel", id="picker.cancel")]

    def __init__(
        self, title: str, choices: Sequence[tuple[str, str]], current: str | None = None
    ) -> None:
        """`choices` are (value, label) pairs; `current` starts highlighted."""
        super().__init__()
        self.title_text = title
        self.choices = list(choices)
        self.current = current

    def compose(self) -> ComposeResult:
        """A title line and the options (labels shown literally)."""
        with Vertical(id="picker"):
            yield Static(Text(self.title_text), markup=False, id="picker-title")
            yield OptionList(
                *(
                    Option(Text(sanitize(label, 60)), id=f"o{i}")
                    for i, (_, label) in enumerate(self.choices)
                ),
                id="picker-options",
                markup=False,
            )

    def on_resize(self, event: events.Resize) -> None:
        """A terminal below the minimum: fill it (dialog_fit.py)."""
        fit_dialog(self, event.size)

    def on_mount(self) -> None:
        """Fit the terminal; highlight the current value."""
        fit_dialog(self, self.app.size)
        options = self.query_one(OptionList)
        for i, (value, _) in enumerate(self.choices):
            if value == self.current:
                options.highlighted = i
                break
        else:
            options.highlighted = 0 if self.choices else None
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Return the chosen value."""
        event.stop()
        self.dismiss(self.choices[event.option_index][0])
