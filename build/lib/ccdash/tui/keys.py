"""The dashboard's keys as data: bindings, the help screen and the command palette use it."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True, slots=True)
class Key:
    """One operator command: key, action, footer label, palette title and help."""

    id: str
    key: str
    action: str
    short: str
    title: str  # "area: action", as the command palette lists it
    help: str
    display: str | None = None
    footer: bool = True


KEYS: tuple[Key, ...] = (
    Key("app.help", "question_mark", "help", "help", "app: help", "The key table", display="?"),
    Key(
        "app.quit",
        "q",
        "quit",
        "quit",
        "app: quit",
        "Stop the engine gracefully (handlers finish, leases are handed back) and exit",
    ),
    Key(
        "consumers.kill",
        "k",
        "kill",
        "kill",
        "consumers: kill selected",
        "Crash the selected consumer; its leases go to the others and it is replaced",
    ),
    Key(
        "consumers.hang",
        "h",
        "hang",
        "hang",
        "consumers: hang selected",
        "Stall the selected consumer and stop its heartbeats; the health check must catch it",
    ),
    Key(
        "consumers.slow",
        "s",
        "slow",
        "slow",
        "consumers: slow selected",
        "Make the selected consumer slower by a factor (1 restores it)",
    ),
    Key(
        "consumers.weight",
        "w",
        "weight",
        "weight",
        "consumers: set weight",
        "Set the selected consumer's weight for the weighted balancer",
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
        footer=False,
    ),
    Key(
        "pool.scale_up",
        "plus",
        "scale(1)",
        "scale+",
        "pool: scale up",
        "One more consumer",
        display="+",
    ),
    Key(
        "pool.scale_down",
        "minus",
        "scale(-1)",
        "scale-",
        "pool: scale down",
        "One consumer fewer (the idlest drains and stops)",
        display="-",
    ),
    Key(
        "pool.balancer",
        "b",
        "balancer",
        "balancer",
        "pool: switch balancer",
        "Pick the load-balancing strategy",
    ),
    Key(
        "pool.autoscale",
        "a",
        "autoscale",
        "autoscale",
        "pool: toggle autoscaler",
        "Let the autoscaler resize the pool, or stop it",
    ),
    Key(
        "pool.rolling_update",
        "u",
        "rolling_update",
        "update",
        "pool: rolling update",
        "Replace every consumer, one at a time, with the next handler version (the demo's "
        "v2): no downtime, nothing lost",
    ),
    Key(
        "load.burst",
        "l",
        "burst",
        "burst",
        "load: inject a burst",
        "Publish a burst of messages at once",
    ),
    Key(
        "load.poison",
        "p",
        "poison",
        "poison",
        "load: inject a poison message",
        "Publish a message that always fails: it reaches the DLQ after max attempts",
    ),
    Key(
        "load.pause",
        "z",
        "pause",
        "pause",
        "load: pause / resume consumption",
        "Stop handing out work (publishing goes on, the backlog grows), or resume",
    ),
    Key(
        "dlq.redrive",
        "r",
        "redrive",
        "redrive",
        "dlq: redrive",
        "Put dead letters back: the selected one or error group when the DLQ pane has "
        "focus, else all (asks first)",
    ),
    Key(
        "dlq.purge",
        "x",
        "purge",
        "purge",
        "dlq: purge",
        "Delete dead letters for good: selected / group, else all (asks first)",
        footer=False,
    ),
    Key(
        "dlq.group",
        "g",
        "group",
        "group",
        "dlq: group by error",
        "Show the DLQ as one line per distinct error, or as messages",
        footer=False,
    ),
    Key(
        "alerts.ack",
        "c",
        "ack_alert",
        "ack alert",
        "alerts: acknowledge",
        "Acknowledge the selected firing alert (or the newest one)",
        footer=False,
    ),
    Key(
        "drills.run",
        "d",
        "drill",
        "drill",
        "drills: run a drill",
        "Pick a drill (the scenario's and the built-in ones) and run it",
    ),
    Key(
        "view.log",
        "v",
        "toggle_log",
        "log",
        "view: show / hide log",
        "Show or hide the log pane",
        footer=False,
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
)

# Keys that only mean something inside a pane (shown in help, not bound at app level).
PANE_KEYS: tuple[tuple[str, str], ...] = (
    ("Tab", "move to the next pane (Shift+Tab: back)"),
    ("↑ ↓", "move the selection in a table (PgUp / PgDn too)"),
    ("Enter", "DLQ: open the selected message with its delivery history"),
    ("Esc", "close a dialog or the message view"),
    ("^P", "command palette: every command above by name"),
    ("^C ^Q", "quit, as q does (the engine stops gracefully)"),
)


def bindings() -> list[Binding]:
    """Textual bindings for KEYS, each with its id so keys can be remapped."""
    return [
        Binding(k.key, k.action, k.short, show=k.footer, key_display=k.display, id=k.id)
        for k in KEYS
    ] + [Binding("ctrl+c", "quit", "quit", show=False, id="app.interrupt")]


def key_label(k: Key) -> str:
    """The key as a person types it."""
    return k.display or k.key
