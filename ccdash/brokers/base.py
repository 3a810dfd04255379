"""The broker interface: where messages live, and the lease contract around them.

Every broker (memory, sqlite, redis) implements `Broker`. The engine talks to
nothing else. See "Contract: queue semantics" in DESIGN.md.
"""

from __future__ import annotations

import abc
import json
import json.encoder
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ccdash.backoff import full_jitter
from ccdash.text import sanitize

Receipt = int | str
"""Opaque proof of one delivery; a new one for every delivery of a message."""


# The C encoder json.dumps itself uses (None without the accelerator); typeshed omits it.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_encode_str = json.encoder.encode_basestring_ascii
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_DECODER = json.JSONDecoder()
# The decoder's scanner, for our own text (typeshed does not list the attribute).
_scan_once: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


class BrokerError(Exception):
    """Base class of the errors a broker raises."""


class QueueFull(BrokerError):
    """`publish_nowait` on a bounded queue with no room left."""


class ReceiptRejected(BrokerError):
    """The receipt's lease expired or was released: the message may belong to someone else."""


class BrokerClosed(BrokerError):
    """The broker was closed."""


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


def _not_json(obj: Any) -> Any:
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def encode_json(body: Any) -> str:
    """`json.dumps(body, separators=(",", ":"), allow_nan=False)`, same text and same
    errors, without building a JSONEncoder per call (that costs as much as the encoding).
    The C encoder is made per call: its circular-reference markers must not be shared
    (an error leaves them dirty; two threads would see each other's)."""
    if _c_make_encoder is None:  # an interpreter without the C accelerator
        return _ENCODER.encode(body)
    if type(body) is str:
        return _encode_str(body)
    return "".join(_c_make_encoder({}, _not_json, _encode_str, None, ":", ",",
                                   False, False, False)(body, 0))


def decode_json_text(text: str) -> Any:
    """A value back from the text `encode_json` made (and only that: it skips the
    checks for leading and trailing garbage that foreign input needs)."""
    return _scan_once(text, 0)[0]


def decode_json(data: bytes) -> Any:
    """`json.loads(data)` (same values, same errors) without its per-call encoding
    detection when the bytes are UTF-8, as every ccdash writer makes them."""
    try:
        return _DECODER.decode(data.decode())
    except ValueError:  # not plain UTF-8 (a BOM, UTF-16, or bad JSON): the general path
        return json.loads(data)


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
        raise ValueError(f"priority must be from {-MAX_PRIORITY} to {MAX_PRIORITY}, "
                         f"got {priority}")
    if dedup_id is not None and type(dedup_id) is not str:
        raise TypeError(f"dedup_id must be a str or None, not {type(dedup_id).__name__}")


class PayloadTooLarge(ValueError):
    """A message body over the configured maximum (`max_body_bytes`)."""


def encode_body(body: Any, max_bytes: int | None = None) -> tuple[bytes, bool]:
    """Payload to stored bytes: bytes stay bytes, anything else becomes JSON.

    TypeError (with the reason) for a body that cannot be encoded: not JSON, a
    cycle, nested too deeply. PayloadTooLarge when the bytes exceed `max_bytes`.
    """
    if type(body) is bytes:  # the common case first: no copy, no isinstance
        data, is_json = body, False
    elif isinstance(body, (bytes, bytearray, memoryview)):  # noqa: UP038 - a tuple is faster
        data, is_json = bytes(body), False
    else:
        data, is_json = encode_json_body(body).encode(), True
    if max_bytes is not None and len(data) > max_bytes:
        raise PayloadTooLarge(too_large(len(data), max_bytes))
    return data, is_json


def encode_json_body(body: Any, max_bytes: int | None = None) -> str:
    """A non-bytes payload as JSON text, or the payload error (TypeError with the
    reason; PayloadTooLarge when its UTF-8 form is over `max_bytes`)."""
    try:
        text = encode_json(body)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"payload must be bytes or JSON-serialisable: {exc}") from None
    except RecursionError:
        raise TypeError("payload must be bytes or JSON-serialisable: nested too deeply "
                        "to encode") from None
    # Counting the UTF-8 bytes costs an encode: only when the characters could be over.
    if max_bytes is not None and len(text) * 4 > max_bytes:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise PayloadTooLarge(too_large(size, max_bytes))
    return text


def too_large(size: int, max_bytes: int) -> str:
    """The PayloadTooLarge message."""
    return f"payload is {size} bytes, over the limit of {max_bytes} (max_body_bytes)"


def decode_body(data: bytes, is_json: bool) -> Any:
    """Stored bytes back to the published value."""
    return decode_json(data) if is_json else data


class Broker(abc.ABC):
    """Where messages live. All methods are safe to call from one event loop."""

    config: QueueConfig
    url: str = "memory"
    # Told of events only the broker sees (kind, fields), e.g. "lease-expired".
    on_event: Callable[[str, dict[str, Any]], None] | None = None
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
    def publish_nowait(
        self, body: Any, *, priority: int = 0, dedup_id: str | None = None
    ) -> str:
        """Accept a message now or raise QueueFull. Returns the message id."""

    async def flush(self) -> None:  # noqa: B027 - optional hook
        """Wait until every message accepted by publish_nowait is stored durably
        (a no-op where accepting is storing)."""

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

    async def extend_many(self, receipts: Sequence[Receipt], seconds: float
                          ) -> list[float | None]:
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
    async def release(
        self, receipts: Sequence[Receipt], reason: str, error: str = ""
    ) -> int:
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
