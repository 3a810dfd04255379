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


class ScaleReason(StrEnum):
    """Why the autoscaler wanted the size it did, or held back from it."""

    FORECAST = "forecast"  # the predicted arrival rate needs more
    BACKLOG = "backlog"
    UTILISATION = "utilisation"
    WARMING = "warming"  # held: cold consumers look idle until they have started
    STABILISING = "stabilising"  # held: a higher recommendation within the down window
    AT_MAX = "at-max"  # wants more than max_consumers
    COOLDOWN = "cooldown"  # held: too soon after the last change
    PAUSED = "paused"  # held: consumption is paused, the backlog grows by design


class BreakerState(StrEnum):
    """A circuit breaker's state."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"  # one trial call at a time


__all__ = [
    "ACTIVE_ALERT_STATES",
    "ENDED_STATES",
    "LIVE_STATES",
    "AlertState",
    "BreakerState",
    "ConsumerState",
    "ScaleReason",
    "Severity",
]
