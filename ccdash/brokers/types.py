"""The data brokers hand out and take: receipts, deliveries, dead letters, lease and
queue views, the queue settings, the errors and the reasons a lease ends.

Shared by every broker and the engine; `ccdash.brokers.base` re-exports them with
the `Broker` interface.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from ccdash.backoff import full_jitter

Receipt = int | str
"""Opaque proof of one delivery; a new one for every delivery of a message."""


class BrokerError(Exception):
    """Base class of the errors a broker raises."""


class QueueFull(BrokerError):
    """`publish_nowait` on a bounded queue with no room left."""


class ReceiptRejected(BrokerError):
    """The receipt's lease expired or was released: the message may belong to someone else."""


class BrokerClosed(BrokerError):
    """The broker was closed."""


class BrokerBusy(BrokerError):
    """Another process kept the broker's store locked for longer than the broker waits
    (a passing condition of the store, not a bad argument: the CLI exits 1, not 2)."""


# Why a lease ended without an ack; also the DLQ `reason` values.
REASON_FAILED = "failed"
REASON_EXPIRED = "lease-expired"
REASON_CONSUMER_FAILED = "consumer-failed"
REASON_RELEASED = "released"  # handed back unprocessed (shutdown, drain): no attempt used up
REASON_UNDECODABLE = "undecodable"  # read back but not decodable: dead-lettered at once
RAW_LIMIT = 65536  # bytes of an undecodable message kept in its dead letter


@dataclass(slots=True)
class Delivery:
    """One delivery of a message to a consumer, holding a lease until acked or nacked."""

    message_id: str
    body: Any
    attempt: int
    consumer_id: str
    receipt: Receipt
    priority: int = 0
    deadline: float = 0.0  # monotonic time the lease runs out
    published_at: float = 0.0


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """How one delivery of a message ended, other than with an ack."""

    at: float
    consumer_id: str
    attempt: int
    outcome: str  # one of the REASON_* values
    error: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message in the dead-letter queue."""

    message_id: str
    reason: str
    attempts: int
    last_error: str
    priority: int
    body: Any
    dead_at: float
    history: tuple[HistoryEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageWhere:
    """Where one message is now (`Broker.locate`), with its failed deliveries so far."""

    message_id: str
    state: str  # "ready" | "delayed" | "leased" | "dead"
    priority: int
    attempt: int  # deliveries so far
    holder: str  # the consumer holding its lease ("" unless leased)
    due: float  # leased: lease deadline; delayed: when it is visible again (clock time)
    published_at: float
    history: tuple[HistoryEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A live lease, as shown to operators."""

    message_id: str
    consumer_id: str
    attempt: int
    deadline: float
    priority: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts of where messages are now, and totals since start."""

    ready: int
    delayed: int
    in_flight: int
    dead: int
    published: int
    acked: int
    dead_lettered: int
    redelivered: int
    capacity: int | None = None

    @property
    def depth(self) -> int:
        """Messages waiting to be delivered (ready now or after a retry delay)."""
        return self.ready + self.delayed


DEFAULT_MAX_BODY = 1024 * 1024  # bytes: a message body bigger than this is refused


@dataclass(slots=True)
class QueueConfig:
    """The queue settings a broker needs."""

    visibility_timeout: float = 30.0
    max_attempts: int = 5
    backoff_base: float = 0.1  # first retry delay cap, seconds
    backoff_max: float = 30.0  # cap on any retry delay
    capacity: int | None = None  # None: unbounded
    dedup_window: float = 300.0
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY

    def __post_init__(self) -> None:
        if self.seed is not None:
            self.rng = random.Random(self.seed)
        if not (self.visibility_timeout > 0 and math.isfinite(self.visibility_timeout)):
            raise ValueError("visibility_timeout must be a positive finite number")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.capacity is not None and self.capacity < 1:
            raise ValueError("capacity must be at least 1 (or None for unbounded)")
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")

    def backoff(self, attempt: int) -> float:
        """Delay before retry after failed `attempt`: exponential, capped, full jitter."""
        return full_jitter(self.rng, self.backoff_base, self.backoff_max, attempt)
