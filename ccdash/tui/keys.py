"""The dashboard's keys as data: bindings, the help screen and the command palette use it.

The tables live by screen area (command_keys: the keys that act; view_keys: the keys
that change what is shown); here they are joined, with the footer's order."""

from __future__ import annotations

import dataclasses

from textual.binding import Binding

from ccdash.tui.command_keys import COMMAND_KEYS
from ccdash.tui.key_spec import Key, key_label
from ccdash.tui.view_keys import PANE_KEYS, VIEW_KEYS

_KEYS: tuple[Key, ...] = COMMAND_KEYS + VIEW_KEYS

# The footer's keys, in this order: what an operator needs first (all fit in 80 columns).
FOOTER_ORDER = (
    "app.help",
    "app.quit",
    "consumers.kill",
    "drills.run",
    "load.pause",
    "view.filter",
    "view.zoom",
    "app.palette",
)
KEYS = tuple(dataclasses.replace(k, footer=k.id in FOOTER_ORDER) for k in _KEYS)


def bindings() -> list[Binding]:
    """Textual bindings for KEYS, each with its id so keys can be remapped (the footer's
    first, in FOOTER_ORDER: the footer shows them in binding order)."""
    keys = sorted(
        KEYS, key=lambda k: FOOTER_ORDER.index(k.id) if k.id in FOOTER_ORDER else len(FOOTER_ORDER)
    )
    return [
        Binding(k.key, k.action, k.short, show=k.footer, key_display=k.display, id=k.id)
        for k in keys
    ] + [Binding("ctrl+c", "quit", "quit", show=False, id="app.interrupt")]


MUTATING_ACTIONS = frozenset(k.action.split("(")[0] for k in KEYS if k.mutating)


__all__ = ["FOOTER_ORDER", "KEYS", "MUTATING_ACTIONS", "PANE_KEYS", "Key", "bindings", "key_label"]
