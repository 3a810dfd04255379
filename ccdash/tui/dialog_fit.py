"""Dialogs on a terminal smaller than the dashboard's minimum (it shrank while one was
open): the dialog takes the whole screen, so nothing of the too-small notice shows
through around it (its text cut by the box read as garbage); below 24x6 it loses its
border too. The CSS for both classes is in app.tcss."""

from __future__ import annotations

from typing import Any

from textual.geometry import Size
from textual.screen import Screen

from ccdash.tui.layout import MIN_SIZE

BARE_BELOW = (24, 6)  # smaller than this: no border, one line per text


def fit_dialog(screen: Screen[Any], size: Size) -> bool:
    """Set `-fill` (below the minimum) and `-bare` (below BARE_BELOW) on a dialog's
    screen for a terminal of `size`; True if it fills the screen."""
    small = size.width < MIN_SIZE[0] or size.height < MIN_SIZE[1]
    screen.set_class(small, "-fill")
    screen.set_class(size.width < BARE_BELOW[0] or size.height < BARE_BELOW[1], "-bare")
    return small


__all__ = ["BARE_BELOW", "fit_dialog"]
