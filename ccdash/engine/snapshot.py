"""Immutable snapshots of the engine's state: raw numbers and names, no formatting."""

from __future__ import annotations

from dataclasses import dataclass

from ccdash.brokers.base import DeadLetter
from ccdash.engine.alerts import Alert
from ccdash.engine.events import Event
from ccdash.engine.states import ENDED_STATES, LIVE_STATES, ConsumerState

# The consumer states by their old names (ConsumerState is the vocabulary).
IDLE = ConsumerState.IDLE
PROCESSING = ConsumerState.PROCESSING
DRAINING = ConsumerState.DRAINING
FAILED = ConsumerState.FAILED
STOPPED = ConsumerState.STOPPED


def shown_state(state: ConsumerState, held: int) -> ConsumerState:
    """The state a snapshot gives a consumer: a live one that holds deliveries (handling
    one, or buffered for it, as a batch lingers or between two handler runs) is
    `processing`, one that holds none `idle`; an operator reads `idle` as "no work".
    The consumer's own flag lags its holdings by a turn of its loop either way."""
    if state in LIVE_STATES:
        return PROCESSING if held > 0 else IDLE
    return state


@dataclass(frozen=True, slots=True)
class QueueView:
    """Where messages are now."""

    depth: int  # ready + delayed
    ready: int
    delayed: int
    in_flight: int
    dead: int
    capacity: int | None
    oldest_ready_age: float | None = None  # seconds the oldest ready message has waited


@dataclass(frozen=True, slots=True)
class ConsumerView:
    """One consumer, as operators see it."""

    id: str
    state: str
    weight: int
    in_flight: int
    processed: int
    failed: int
    latency_p50: float | None  # seconds, recent window
    latency_p99: float | None
    heartbeat_age: float
    version: str = "v1"
    slow_factor: float = 1.0
    hung: bool = False
    ended_at: float | None = None  # when it failed or stopped
    note: str = ""  # why it ended, if it did


@dataclass(frozen=True, slots=True)
class LeaseView:
    """A live lease."""

    message_id: str
    consumer_id: str
    attempt: int
    expires_in: float
    priority: int = 0


@dataclass(frozen=True, slots=True)
class ScalingEvent:
    """A decision of the autoscaler or an operator's scale command."""

    at: float
    source: str  # "autoscaler" | "operator" | "drill"
    from_size: int
    to_size: int
    reason: str


@dataclass(frozen=True, slots=True)
class StallView:
    """A stretch in which the event loop did not run on time, and what blocked it if seen."""

    at: float  # when the health tick found it
    seconds: float  # how long the loop was held up
    consumer_id: str = ""  # whose handler was running meanwhile ("" if not seen)
    message_id: str = ""  # the delivery it was handling
    where: str = ""  # the innermost code line seen while blocked: "file:line in func"
    leases_kept: int = 0  # leases that ran out meanwhile and were kept, not charged


@dataclass(frozen=True, slots=True)
class Decision:
    """One autoscaler evaluation: what it saw, what it wanted, what it did and why."""

    at: float
    current: int
    reactive: int
    predictive: int
    desired: int
    applied: int
    reason: str
    arrival_rate: float
    forecast_rate: float
    service_time: float


@dataclass(frozen=True, slots=True)
class AutoscalerView:
    """The autoscaler's newest decision and how its forecast compares with what came."""

    last: Decision | None  # None before the first decision
    horizon: float  # seconds ahead each forecast looks
    forecast_for_now: float | None  # arrival rate forecast `horizon` seconds ago, for now
    predictive: bool  # whether the forecast sizes the pool (else it is only shown)


@dataclass(frozen=True, slots=True)
class LatencyTotals:
    """Every handler run ever timed (ended consumers too), as histogram buckets."""

    buckets: tuple[tuple[float, int], ...]  # (upper edge in seconds, count), non-empty only
    count: int
    total: float  # seconds


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole engine at one instant; frozen, cheap, safe to hand to another task."""

    at: float
    queue: QueueView
    consumers: tuple[ConsumerView, ...]
    leases: tuple[LeaseView, ...]
    dead_letters: tuple[DeadLetter, ...]
    alerts: tuple[Alert, ...]
    balancer: str
    published: int
    acked: int
    dead_lettered: int
    redelivered: int
    failovers: int
    publish_rate: float
    ack_rate: float
    latency_p50: float | None
    latency_p99: float | None
    loop_lag: float
    paused: bool
    autoscale: bool
    desired_consumers: int
    broker: str
    scaling: tuple[ScalingEvent, ...] = ()
    last_event_seq: int = 0
    autoscaler: AutoscalerView | None = None
    stalls: tuple[StallView, ...] = ()  # newest first: event-loop stalls and their culprits
    # All-time pool size changes by (direction, reason) (`scaling` keeps only the latest).
    scaling_counts: tuple[tuple[str, str, int], ...] = ()
    visibility_timeout: float = 30.0  # the broker's: how long a lease lasts
    # Filled by `engine.snapshot(history=True)` only (reports, exposition): costlier.
    decisions: tuple[Decision, ...] = ()  # the autoscaler's recent decisions, oldest first
    latency_totals: LatencyTotals | None = None

    @property
    def live_consumers(self) -> int:
        """Consumers that can take work now."""
        return sum(1 for c in self.consumers if c.state in LIVE_STATES)


__all__ = [
    "DRAINING",
    "ENDED_STATES",
    "FAILED",
    "IDLE",
    "LIVE_STATES",
    "PROCESSING",
    "STOPPED",
    "AutoscalerView",
    "ConsumerState",
    "ConsumerView",
    "Decision",
    "Event",
    "LatencyTotals",
    "LeaseView",
    "QueueView",
    "ScalingEvent",
    "Snapshot",
    "shown_state",
]
