"""The dashboard's keys as data: bindings, the help screen and the command palette use it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from textual.binding import Binding


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


_KEYS: tuple[Key, ...] = (
    Key(
        "app.help",
        "question_mark",
        "help",
        "help",
        "app: help",
        "The key table",
        display="?",
        footer=True,
    ),
    Key(
        "app.quit",
        "q",
        "quit",
        "quit",
        "app: quit",
        "Stop the engine gracefully (handlers finish, leases are handed back) and exit",
        footer=True,
    ),
    Key(
        "app.palette",
        "ctrl+p",
        "command_palette",
        "palette",
        "app: command palette",
        "Every command by name, key or the words you would use",
        display="^p",
        footer=True,
    ),
    Key(
        "consumers.kill",
        "k",
        "kill",
        "kill",
        "consumers: kill selected",
        "Crash the selected consumer; its leases go to the others and it is replaced",
        footer=True,
        mutating=True,
        words="crash failover fault worker stop",
    ),
    Key(
        "consumers.hang",
        "h",
        "hang",
        "hang",
        "consumers: hang selected",
        "Stall the selected consumer and stop its heartbeats; the health check must catch it",
        mutating=True,
        words="stall freeze heartbeat failover fault stuck",
    ),
    Key(
        "consumers.slow",
        "s",
        "slow",
        "slow",
        "consumers: slow selected",
        "Make the selected consumer slower by a factor (1 restores it)",
        mutating=True,
        words="latency degrade slowdown",
    ),
    Key(
        "consumers.weight",
        "w",
        "weight",
        "weight",
        "consumers: set weight",
        "Set the selected consumer's weight for the weighted balancer",
        mutating=True,
        words="priority share",
    ),
    Key(
        "fleet.drain",
        "D",
        "drain_worker",
        "drain",
        "fleet: drain worker",
        "Redis fleet: drain the selected consumer's worker (it finishes what it holds, "
        "hands back the rest and exits; asks first). k and +/- on another worker's "
        "consumer go to that worker too",
        display="D",
        mutating=True,
        words="worker stop remote shutdown",
    ),
    Key(
        "pool.scale_up",
        "plus",
        "scale(1)",
        "scale+",
        "pool: scale up",
        "One more consumer",
        display="+",
        mutating=True,
        words="add consumer more workers grow",
    ),
    Key(
        "pool.scale_down",
        "minus",
        "scale(-1)",
        "scale-",
        "pool: scale down",
        "One consumer fewer (the idlest drains and stops)",
        display="-",
        mutating=True,
        words="remove consumer fewer workers shrink",
    ),
    Key(
        "pool.balancer",
        "b",
        "balancer",
        "balancer",
        "pool: switch balancer",
        "Pick the load-balancing strategy",
        mutating=True,
        words="load balancing round-robin weighted least-inflight strategy",
    ),
    Key(
        "pool.autoscale",
        "a",
        "autoscale",
        "autoscale",
        "pool: toggle autoscaler",
        "Let the autoscaler resize the pool, or stop it",
        mutating=True,
        words="autoscaling scale automatic capacity",
    ),
    Key(
        "pool.rolling_update",
        "u",
        "rolling_update",
        "update",
        "pool: rolling update",
        "Replace every consumer, one at a time, with the next handler version (the demo's "
        "v2): no downtime, nothing lost",
        mutating=True,
        words="deploy upgrade version zero-downtime",
    ),
    Key(
        "load.burst",
        "l",
        "burst",
        "burst",
        "load: inject a burst",
        "Publish a burst of messages at once",
        mutating=True,
        words="spike traffic publish messages",
    ),
    Key(
        "load.poison",
        "p",
        "poison",
        "poison",
        "load: inject a poison message",
        "Publish a message that always fails: it reaches the DLQ after max attempts",
        mutating=True,
        words="bad message dlq failure",
    ),
    Key(
        "load.pause",
        "z",
        "pause",
        "pause",
        "load: pause / resume",
        "Stop handing out work (publishing goes on, the backlog grows), or resume",
        footer=True,
        mutating=True,
        words="stop resume freeze consumption",
    ),
    Key(
        "dlq.redrive",
        "r",
        "redrive",
        "redrive",
        "dlq: redrive",
        "Put dead letters back: the selected one or error group when the DLQ pane has "
        "focus, else all (asks first)",
        mutating=True,
        words="dead letter retry replay requeue dlq",
    ),
    Key(
        "dlq.purge",
        "x",
        "purge",
        "purge",
        "dlq: purge",
        "Delete dead letters for good: selected / group, else all (asks first)",
        mutating=True,
        words="dead letter delete remove dlq",
    ),
    Key(
        "dlq.group",
        "g",
        "group",
        "group",
        "dlq: group by error",
        "Show the DLQ as one line per distinct error, or as messages",
        words="dead letter errors fingerprint dlq",
    ),
    Key(
        "alerts.ack",
        "c",
        "ack_alert",
        "ack alert",
        "alerts: acknowledge",
        "Acknowledge the selected firing alert (or the newest one)",
        mutating=True,
        words="acknowledge silence alarm",
    ),
    Key(
        "drills.run",
        "d",
        "drill",
        "drill",
        "drills: run a drill",
        "Pick a drill (the scenario's and the built-in ones) and run it",
        footer=True,
        mutating=True,
        words="failover chaos fault test kill hang",
    ),
    Key(
        "view.log",
        "v",
        "toggle_log",
        "log",
        "view: show / hide log",
        "Show or hide the log pane",
    ),
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
        "Show and focus the alerts",
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


def key_label(k: Key) -> str:
    """The key as a person types it."""
    return k.display or k.key
