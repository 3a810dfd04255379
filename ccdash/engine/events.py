"""Operational events: typed kinds that carry their log level, and the bounded log.

An event is a past-tense fact (consumer-failed, balancer-switched, ...). Its
kind is a `StrEnum` member, so listeners match members (a typo fails at import)
while logs, recordings and the dashboard keep the plain words.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ccdash.engine.alerts import Alert
from ccdash.engine.states import Severity


class Level(StrEnum):
    """How a log line of an event is filed."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Kind(StrEnum):
    """Base of every event-kind vocabulary: each member carries its log level and says
    what happened (the reference page's event table is generated from these).

    Members are written `NAME = "text", Level.X, "what happened"`; other layers (the
    scenario's drills) subclass it with kinds of their own that travel through the same
    log."""

    level: Level
    doc: str

    def __new__(cls, text: str, level: Level = Level.INFO, doc: str = "") -> Kind:
        member = str.__new__(cls, text)
        member._value_ = text
        member.level = level
        member.doc = doc
        return member


_I, _W, _E = Level.INFO, Level.WARNING, Level.ERROR


class EventKind(Kind):
    """What the engine reports."""

    ENGINE_STARTED = "engine-started", _I, "the engine started its consumers"
    ENGINE_STOPPED = "engine-stopped", _I, "the engine stopped; says how many messages are queued"
    TASKS_ABANDONED = "tasks-abandoned", _W, "tasks that ignored cancellation were left at stop"
    LISTENER_FAILED = "listener-failed", _W, "an event listener raised; it was removed"
    CONSUMER_STARTED = "consumer-started", _I, "a consumer started"
    CONSUMER_READY = "consumer-ready", _I, "a cold-starting consumer takes work now"
    CONSUMER_STOPPED = "consumer-stopped", _I, "a draining consumer finished and stopped"
    CONSUMER_FAILED = (
        "consumer-failed",
        _E,
        ("a consumer crashed, was killed or missed its heartbeats; its leases went back"),
    )
    CONSUMER_REPLACED = "consumer-replaced", _I, "the supervisor replaced a failed consumer"
    CONSUMER_HUNG = "consumer-hung", _W, "a drill stopped a consumer's heartbeats"
    CONSUMER_SLOWED = "consumer-slowed", _I, "a consumer's handling was slowed (or restored)"
    RESTART_LIMIT = "restart-limit", _E, "too many restarts in the window: no replacement"
    POOL_SCALED = "pool-scaled", _I, "the pool's size changed (operator, drill, autoscaler)"
    SCALE_HELD = "scale-held", _W, "the autoscaler wanted another size and held back"
    LOOP_STALLED = "loop-stalled", _W, "a handler blocked the event loop; names the culprit"
    ROLLING_UPDATE_STARTED = "rolling-update-started", _I, "a rolling update began"
    ROLLING_UPDATE_FINISHED = "rolling-update-finished", _I, "every consumer runs the new version"
    BALANCER_SWITCHED = "balancer-switched", _I, "the balancing strategy changed"
    WEIGHT_SET = "weight-set", _I, "a consumer's weight changed"
    CONSUMPTION_PAUSED = "consumption-paused", _I, "no work is handed out (publishing goes on)"
    CONSUMPTION_RESUMED = "consumption-resumed", _I, "work is handed out again"
    AUTOSCALE_SWITCHED = "autoscale-switched", _I, "the autoscaler was turned on or off"
    DLQ_REDRIVEN = "dlq-redriven", _I, "dead letters were put back on the queue"
    DLQ_PURGED = "dlq-purged", _I, "dead letters were deleted"
    DEAD_LETTERED = "dead-lettered", _W, "a message went to the DLQ after its last attempt"
    ACK_REJECTED = "ack-rejected", _W, "an ack came after its lease ran out (a duplicate run)"
    LEASE_EXPIRED = "lease-expired", _W, "a lease ran out; the message is visible again"
    UNDECODABLE = "undecodable", _W, "a foreign or corrupt entry went to the DLQ at once"
    STORE_BUSY = (
        "store-busy",
        _W,
        "broker writes wait out a passing failure (another process holds the lock); retried",
    )
    STORE_RECOVERED = "store-recovered", _I, "broker writes go through again after store-busy"
    BREAKER_OPENED = "breaker-opened", _W, "a message type's circuit breaker opened"
    BREAKER_CLOSED = "breaker-closed", _I, "a message type's circuit breaker closed"
    ALERT_FIRING = "alert-firing", _W, "an alert fired (an error when it is critical)"
    ALERT_ACKNOWLEDGED = "alert-acknowledged", _I, "an operator acknowledged an alert"
    ALERT_RESOLVED = "alert-resolved", _I, "an alert's condition no longer holds"


class DrillEvent(Kind):
    """What the scenario's drills report through the engine's event log (its listeners,
    the log file and a recording see them; the engine itself never emits them)."""

    FIRED = "drill-fired", _W, "a drill fired (kill, hang, poison, ...)"
    PASS = "drill-pass", _W, "a drill's recovery met its limits"
    FAIL = "drill-fail", _W, "a drill failed (too slow, or something unhandled)"
    DONE = "drill-done", _W, "an action drill (scale, balancer, slow) was done"
    SKIPPED = "drill-skipped", _W, "a drill could not run (no such consumer)"


# Named groups, as sets of members: a kind read back as text is found in them too.
ALERT_EVENTS = frozenset(
    {EventKind.ALERT_FIRING, EventKind.ALERT_ACKNOWLEDGED, EventKind.ALERT_RESOLVED}
)
DRILL_EVENTS = frozenset(DrillEvent)
_BY_TEXT: dict[str, Kind] = {k.value: k for k in [*EventKind, *DrillEvent]}


def level_of(kind: str, fields: dict[str, object] | None = None) -> Level:
    """The log level of an event: its kind's, raised to error for a critical alert.

    A plain string (an event read back from a recording) is looked up by its text."""
    level = getattr(kind, "level", None)
    if not isinstance(level, Level):
        known = _BY_TEXT.get(kind)
        level = Level.INFO if known is None else known.level
    if kind == EventKind.ALERT_FIRING and (fields or {}).get("severity") == Severity.CRITICAL:
        return Level.ERROR
    return level


@dataclass(frozen=True, slots=True)
class Event:
    """A past-tense operational fact (consumer-failed, balancer-switched, ...)."""

    seq: int
    at: float
    kind: str  # a Kind member when the engine made it; its text when read back
    message: str
    fields: tuple[tuple[str, object], ...] = ()


class EventLog:
    """The newest events (bounded) and the listeners told of each new one."""

    def __init__(self, now: Callable[[], float], keep: int = 1000) -> None:
        self._now = now
        self.buffer: deque[Event] = deque(maxlen=keep)
        self._seq = itertools.count(1)
        self._listeners: list[Callable[[Event], None]] = []

    def emit(self, kind: str, message: str, **fields: Any) -> Event:
        """Record an event and tell the listeners. `kind` is a `Kind` member (its level
        travels with it); a kind only a broker knows is kept as its text (filed as info)."""
        ev = Event(next(self._seq), self._now(), kind, message, tuple(fields.items()))
        self.buffer.append(ev)
        failed: list[tuple[Callable[[Event], None], str]] = []
        for listener in self._listeners:
            try:
                listener(ev)
            except Exception as exc:  # its bug must not stop whatever emitted the event
                failed.append((listener, type(exc).__name__))
        for listener, error in failed:
            self._listeners.remove(listener)
            name = getattr(listener, "__qualname__", type(listener).__qualname__)
            self.emit(
                EventKind.LISTENER_FAILED,
                f"event listener {name} raised {error} on {ev.kind}; removed",
                listener=name,
            )
        return ev

    def from_broker(self, kind: str, fields: dict[str, Any]) -> Event:
        """An event only the broker sees (its `on_event`), e.g. an expired lease."""
        if kind == EventKind.LEASE_EXPIRED:
            return self.emit(
                EventKind.LEASE_EXPIRED,
                f"lease of {fields.get('message_id')} held by {fields.get('consumer')} expired",
                **fields,
            )
        if kind == EventKind.UNDECODABLE:  # a foreign or corrupt entry, dead-lettered at once
            return self.emit(
                EventKind.UNDECODABLE,
                f"undecodable entry {fields.get('entry')} dead-lettered: {fields.get('error')}",
                **fields,
            )
        if kind == EventKind.STORE_BUSY:
            return self.emit(
                EventKind.STORE_BUSY,
                f"broker writes wait: {fields.get('cause')}; retrying with backoff "
                f"for up to {fields.get('patience')} s",
                **fields,
            )
        if kind == EventKind.STORE_RECOVERED:
            return self.emit(
                EventKind.STORE_RECOVERED,
                f"broker writes go through again after {fields.get('waited')} s",
                **fields,
            )
        return self.emit(kind, kind, **fields)  # a kind this engine does not know: as text

    def alert_changed(self, alert: Alert) -> None:
        """An alert fired, was acknowledged or resolved (the AlertBook's `on_change`)."""
        self.emit(
            EventKind(f"alert-{alert.state}"),
            f"alert {alert.name} {alert.state}: {alert.message}",
            alert=alert.name,
            severity=alert.severity,
        )

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Call `fn` with every future event."""
        self._listeners.append(fn)

    def since(self, seq: int) -> list[Event]:
        """Events with a sequence number above `seq` still in the buffer."""
        return [e for e in self.buffer if e.seq > seq]

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest event (0 before the first)."""
        return self.buffer[-1].seq if self.buffer else 0

    def __iter__(self) -> Iterator[Event]:
        return iter(self.buffer)

    def __len__(self) -> int:
        return len(self.buffer)


Emit = Callable[..., Event]  # EventLog.emit as the parts receive it: (kind, message, **fields)

__all__ = [
    "ALERT_EVENTS",
    "DRILL_EVENTS",
    "DrillEvent",
    "Emit",
    "Event",
    "EventKind",
    "EventLog",
    "Kind",
    "Level",
    "level_of",
]
