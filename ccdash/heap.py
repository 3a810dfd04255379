"""The start-up heap of a long run, kept out of full garbage collections.

Once the engine runs, most objects of the process exist for the whole run (the
engine, its broker, Textual and the widgets under the dashboard: ~90,000 objects at
64 consumers). A full (generation-2) collection walked all of them every time,
stalling the event loop 0.1-0.35 s under load (measured under the dashboard);
`gc.freeze` moves them to the permanent generation, which collections skip, until
`thaw` hands them back. The dashboard and `--demo` both use it.
"""

from __future__ import annotations

import gc

_holders = 0  # runs in this process that froze the heap and have not thawed it yet


def freeze() -> None:
    """Keep every object alive now out of full collections until `thaw`. (No
    collection first: that would be such a stall; the start-up's little garbage
    waits for the thaw.)"""
    global _holders
    _holders += 1
    gc.freeze()


def thaw() -> None:
    """The run that froze the heap ends: collectable again once no run holds it."""
    global _holders
    if _holders == 0:
        return
    _holders -= 1
    if _holders == 0:
        gc.unfreeze()
