"""The engine's typed vocabulary of states and severities, with their named groups.

Each is a `StrEnum`, so a member equals (and hashes like) its text: snapshots,
JSON reports and recordings keep the plain words, while code compares members
and a typo fails at import, not in production.
"""

from __future__ import annotations

from enum import StrEnum


class ConsumerState(StrEnum):
    """Where a consumer is in its life."""

    IDLE = "idle"
    PROCESSING = "processing"
    DRAINING = "draining"  # shown while it finishes what it holds; takes no new work
    FAILED = "failed"
    STOPPED = "stopped"


LIVE_STATES = frozenset({ConsumerState.IDLE, ConsumerState.PROCESSING})  # may be given work
ENDED_STATES = frozenset({ConsumerState.FAILED, ConsumerState.STOPPED})


class AlertState(StrEnum):
    """Where an alert is in its life."""

    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"  # still active; an operator has seen it
    RESOLVED = "resolved"


ACTIVE_ALERT_STATES = frozenset({AlertState.FIRING, AlertState.ACKNOWLEDGED})


class Severity(StrEnum):
    """How urgent an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


__all__ = [
    "ACTIVE_ALERT_STATES",
    "ENDED_STATES",
    "LIVE_STATES",
    "AlertState",
    "ConsumerState",
    "Severity",
]
