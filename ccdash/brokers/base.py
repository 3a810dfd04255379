"""The broker interface: where messages live, and the lease contract around them.

Every broker (memory, sqlite, redis) implements `Broker`. The engine talks to
nothing else. See "Contract: queue semantics" in DESIGN.md. The data types it speaks
live in `ccdash.brokers.types`, the body codec in `ccdash.brokers.codec`; both are
re-exported here, so `from ccdash.brokers.base import ...` reaches them all.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

from ccdash.brokers.codec import (
    PayloadTooLarge,
    decode_body,
    decode_json,
    decode_json_text,
    encode_body,
    encode_json,
    encode_json_body,
    too_large,
)
from ccdash.brokers.types import (
    DEFAULT_MAX_BODY,
    RAW_LIMIT,
    REASON_CONSUMER_FAILED,
    REASON_EXPIRED,
    REASON_FAILED,
    REASON_RELEASED,
    REASON_UNDECODABLE,
    BrokerBusy,
    BrokerClosed,
    BrokerError,
    DeadLetter,
    Delivery,
    HistoryEntry,
    LeaseInfo,
    MessageWhere,
    QueueConfig,
    QueueFull,
    QueueStats,
    Receipt,
    ReceiptRejected,
)
from ccdash.text import sanitize

ERROR_TEXT_LIMIT = 2000  # characters of a handler's error text a broker keeps


def storable_text(text: object, limit: int | None = ERROR_TEXT_LIMIT) -> str:
    """Handler-supplied text (an error, a reason) as every broker stores it: through
    the one sanitiser, so no lone surrogate, NUL or control character reaches a
    store that would refuse it (Redis's UTF-8 encoder, SQLite), and bounded.
    Newlines and tabs stay (a traceback keeps its lines). `limit` None: unbounded
    (a dedup id, whose every character counts)."""
    return sanitize(text, limit, keep="\n\t")


MAX_PRIORITY = 1000  # priorities run from -MAX_PRIORITY to MAX_PRIORITY (a level each)


def check_publish_args(priority: object, dedup_id: object) -> None:
    """TypeError or ValueError for a priority or dedup id a broker cannot take (a level
    per priority: a huge one would overflow SQLite's INTEGER or mint Redis streams)."""
    if type(priority) is not int:
        raise TypeError(f"priority must be an int, not {type(priority).__name__}")
    if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be from {-MAX_PRIORITY} to {MAX_PRIORITY}, got {priority}")
    if dedup_id is not None and type(dedup_id) is not str:
        raise TypeError(f"dedup_id must be a str or None, not {type(dedup_id).__name__}")


class Broker(abc.ABC):
    """Where messages live. All methods are safe to call from one event loop."""

    config: QueueConfig
    url: str = "memory"
    # Told of events only the broker sees (kind, fields), e.g. "lease-expired".
    on_event: Callable[[str, dict[str, Any]], None] | None = None
    # Told, in the broker's own task, that messages became ready there (a remote
    # broker's reader filled its buffer): it hands them out at once and returns whether
    # it wants more (if not, or some are left, `wait_ready` is woken as well).
    on_ready: Callable[[], bool] | None = None
    # Has `publish_nowait` stored the message when it returns? Only an in-process
    # broker's has; a durable or remote one queues it for its next commit or round
    # trip, and a message is accepted only once `publish` (or `flush`) returns.
    stores_on_publish_nowait: bool = False
    # The latest time up to which the process vouches it ran on time (the engine's health
    # tick sets it). A lease deadline past it is not judged expired yet: the event loop
    # was stalled (a handler blocking it), and the holder gets to extend it first.
    stall_guard: Callable[[], float] | None = None

    def expiry_now(self, now: float) -> float:
        """The time lease expiry may be judged at: `now`, held back while stalled."""
        guard = self.stall_guard
        return now if guard is None else min(now, guard())

    async def keep_after_stall(self) -> None:  # noqa: B027 - optional hook
        """The process was stalled (the engine calls it before judging goes on): keep
        what the broker holds for it apart from the consumers' leases (a read-ahead
        buffer), which ran out meanwhile only because nothing could run."""

    @abc.abstractmethod
    async def publish(self, body: Any, *, priority: int = 0, dedup_id: str | None = None) -> str:
        """Accept a message; wait for room on a bounded queue. Returns the message id."""

    @abc.abstractmethod
    def publish_nowait(self, body: Any, *, priority: int = 0, dedup_id: str | None = None) -> str:
        """Accept a message now or raise QueueFull. Returns the message id."""

    async def flush(self) -> None:  # noqa: B027 - optional hook
        """Wait until every message accepted by publish_nowait is stored durably
        (a no-op where accepting is storing)."""

    async def publish_many(self, bodies: Sequence[Any], *, priority: int = 0) -> list[str]:
        """Accept several messages (one group commit or round trip where the broker
        offers it; waits for room on a bounded queue). Returns their ids once all are
        stored; raises as `publish` would for one the broker refuses."""
        ids = []
        for body in bodies:
            try:
                ids.append(self.publish_nowait(body, priority=priority))
            except QueueFull:  # backpressure: store what we have, then wait for room
                await self.flush()
                ids.append(await self.publish(body, priority=priority))
        await self.flush()
        return ids

    @abc.abstractmethod
    async def receive(self, holders: Sequence[str]) -> list[Delivery]:
        """Lease up to len(holders) ready messages, the i-th to holders[i]; never waits."""

    @abc.abstractmethod
    async def wait_ready(self) -> None:
        """Return once a message may be ready to receive (parks; no polling)."""

    @abc.abstractmethod
    def ready_count(self) -> int:
        """Messages that a `receive` now could lease (an estimate for remote brokers)."""

    @abc.abstractmethod
    async def ack(self, receipt: Receipt) -> None:
        """Delete the message of a live lease; ReceiptRejected if the lease is gone."""

    async def ack_many(self, receipts: Sequence[Receipt]) -> list[Receipt]:
        """Ack several; returns the receipts that were rejected."""
        rejected = []
        for r in receipts:
            try:
                await self.ack(r)
            except ReceiptRejected:
                rejected.append(r)
        return rejected

    @abc.abstractmethod
    async def nack(self, receipt: Receipt, error: str = "", *, delay: float | None = None) -> bool:
        """Give a message back after a failure: retry after a backoff (or `delay`), or
        dead-letter it at max_attempts. Returns True if it was dead-lettered."""

    @abc.abstractmethod
    async def defer(self, receipt: Receipt, delay: float) -> None:
        """Give a message back unhandled, visible again after `delay`; the delivery
        does not count as an attempt (used while a circuit breaker is open)."""

    @abc.abstractmethod
    async def extend(self, receipt: Receipt, seconds: float) -> float:
        """Push a live lease's deadline to now + seconds; returns the new deadline."""

    async def extend_many(self, receipts: Sequence[Receipt], seconds: float) -> list[float | None]:
        """`extend` several leases (a remote broker does it in one round trip); the new
        deadline of each, or None where the lease is gone."""
        out: list[float | None] = []
        for r in receipts:
            try:
                out.append(await self.extend(r, seconds))
            except ReceiptRejected:
                out.append(None)
        return out

    @abc.abstractmethod
    async def release(self, receipts: Sequence[Receipt], reason: str, error: str = "") -> int:
        """End leases without an ack, making the messages visible at once.

        `reason` REASON_CONSUMER_FAILED counts as a failed attempt (dead-letter at
        max_attempts); REASON_RELEASED gives the attempt back. Returns how many
        leases were still live."""

    @abc.abstractmethod
    async def release_holder(self, holder: str, reason: str, error: str = "") -> int:
        """`release` every lease `holder` has; returns how many."""

    @abc.abstractmethod
    def stats(self) -> QueueStats:
        """Where messages are now, and totals."""

    def locate(self, message_id: str) -> MessageWhere | None:
        """Where a message is now, for an operator looking for it (None: not held here,
        or this broker cannot tell). May scan: for a person, not for the hot path."""
        return None

    def oldest_ready_published_at(self) -> float | None:
        """When the oldest message ready for delivery now was published (the clock's
        time), or None: nothing ready, or this broker cannot tell cheaply. Its age is
        the queue's latency, the figure operators watch first."""
        return None

    def outstanding(self) -> int:
        """Messages not yet acked or dead-lettered (ready + delayed + leased)."""
        s = self.stats()
        return s.ready + s.delayed + s.in_flight

    @abc.abstractmethod
    def leases(self, limit: int | None = None) -> list[LeaseInfo]:
        """Live leases, soonest deadline first (at most `limit`)."""

    @abc.abstractmethod
    def holder_counts(self) -> dict[str, int]:
        """Live leases per holder."""

    @abc.abstractmethod
    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The DLQ, newest first (at most `limit`)."""

    @abc.abstractmethod
    async def redrive(self, ids: Sequence[str] | None = None) -> int:
        """Put dead messages back (all, or these ids) with attempts reset; returns how many."""

    @abc.abstractmethod
    async def purge(self, ids: Sequence[str] | None = None) -> int:
        """Delete dead messages for good (all, or these ids); returns how many."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect or open files; the engine calls it on start. Errors name the problem."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the broker's resources."""


# The interface, and the data types and codec it speaks (re-exported from their modules).
__all__ = [
    "Broker",
    "BrokerBusy",
    "BrokerClosed",
    "BrokerError",
    "DEFAULT_MAX_BODY",
    "DeadLetter",
    "Delivery",
    "ERROR_TEXT_LIMIT",
    "HistoryEntry",
    "LeaseInfo",
    "MAX_PRIORITY",
    "MessageWhere",
    "PayloadTooLarge",
    "QueueConfig",
    "QueueFull",
    "QueueStats",
    "RAW_LIMIT",
    "REASON_CONSUMER_FAILED",
    "REASON_EXPIRED",
    "REASON_FAILED",
    "REASON_RELEASED",
    "REASON_UNDECODABLE",
    "Receipt",
    "ReceiptRejected",
    "check_publish_args",
    "decode_body",
    "decode_json",
    "decode_json_text",
    "encode_body",
    "encode_json",
    "encode_json_body",
    "storable_text",
    "too_large",
]
