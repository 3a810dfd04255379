"""The keys that change only what the screen shows: panes, zoom, filter, sort, find,
theme (in the order of the help screen), and the keys that work inside a pane."""

from __future__ import annotations

from ccdash.tui.alerts_table import ORDER as ALERT_ORDER
from ccdash.tui.key_spec import Key

VIEW_KEYS: tuple[Key, ...] = (
    Key("view.log", "v", "toggle_log", "log", "view: show / hide log", "Show or hide the log pane"),
    Key(
        "view.next_pane",
        "n",
        "next_pane",
        "next pane",
        "view: next pane",
        "Small terminals: show the next of leases / DLQ / alerts / drills / log",
    ),
    Key("view.theme", "t", "next_theme", "theme", "view: next theme", "Switch to the next theme"),
    Key(
        "view.filter",
        "slash",
        "filter",
        "filter",
        "view: filter a table",
        "Show only the rows of the focused table (consumers, leases, dead letters, alerts, "
        "log) that contain a text; the match count shows in its border; empty clears",
        display="/",
        footer=True,
        words="search find grep",
    ),
    Key(
        "view.sort",
        "o",
        "sort",
        "sort",
        "view: sort a table",
        "Sort the focused table by its next column (ascending, descending, then back to "
        "the natural order: newest first)",
        words="order column",
    ),
    Key(
        "view.find",
        "colon",
        "find",
        "find",
        "view: find a message by id",
        "Where a message is now (queued, in flight with whom, dead-lettered, acked) and "
        "its delivery history",
        display=":",
        words="search locate message id lookup",
    ),
    Key(
        "view.zoom",
        "f",
        "zoom",
        "zoom",
        "view: zoom a pane",
        "Show the focused pane on the whole screen, or go back",
        footer=True,
        words="maximize fullscreen expand",
    ),
    Key(
        "view.pane_consumers",
        "1",
        "show_pane('consumers')",
        "consumers",
        "view: consumers pane",
        "Focus the consumers pane",
    ),
    Key(
        "view.pane_leases",
        "2",
        "show_pane('leases')",
        "leases",
        "view: in-flight leases pane",
        "Show and focus the in-flight leases",
    ),
    Key(
        "view.pane_dead",
        "3",
        "show_pane('dead')",
        "dead letters",
        "view: dead letters pane",
        "Show and focus the dead letters",
        words="dlq",
    ),
    Key(
        "view.pane_alerts",
        "4",
        "show_pane('alerts')",
        "alerts",
        "view: alerts pane",
        f"Show and focus the alerts: {ALERT_ORDER}",
    ),
    Key(
        "view.pane_drills",
        "5",
        "show_pane('drills')",
        "drills",
        "view: drills pane",
        "Show and focus the drill report (verdicts, held / recovered / lost)",
        words="failover verdict",
    ),
    Key(
        "view.pane_log", "6", "show_pane('log')", "log", "view: log pane", "Show and focus the log"
    ),
    Key(
        "view.pane_auto",
        "0",
        "show_pane('auto')",
        "auto",
        "view: most urgent pane",
        "Small terminals: let the detail pane follow what is most urgent (a running drill, "
        "a firing alert, a new dead letter): the default",
    ),
)

# Keys that only mean something inside a pane (shown in help, not bound at app level).
PANE_KEYS: tuple[tuple[str, str], ...] = (
    ("Tab", "move to the next pane (Shift+Tab: back)"),
    ("↑ ↓", "move the selection in a table (PgUp / PgDn too)"),
    ("Enter", "DLQ: open the selected message with its delivery history"),
    ("Esc", "close a dialog or the message view"),
    ("^C ^Q", "quit, as q does (the engine stops gracefully)"),
)
