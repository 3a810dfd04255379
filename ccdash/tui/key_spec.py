"""One operator command as data (`Key`), and how its key is written for a person."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Key:
    """One operator command: key, action, footer label, palette title and help.

    `footer`: shown in the footer (the few an operator needs first; all fit in 80
    columns). `mutating`: changes the engine, the load or the fleet, so read-only mode
    refuses it. `words`: what an operator might type in the palette to find it."""

    id: str
    key: str
    action: str
    short: str
    title: str  # "area: action", as the command palette lists it
    help: str
    display: str | None = None
    footer: bool = True
    mutating: bool = False
    words: str = ""


def key_label(k: Key) -> str:
    """The key as a person types it."""
    return k.display or k.key
