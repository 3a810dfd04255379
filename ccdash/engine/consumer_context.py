"""What a consumer is given: its shared context and the narrow Protocols through
which it reports to the parts of the engine (the dispatcher's slots, the handler
guards, the pool). Generic in the consumer type, so that this module need not
import the consumer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ccdash.brokers.base import Broker, Delivery
from ccdash.clock import Clock
from ccdash.engine.metrics import LatencyHistogram

Handler = Callable[[Delivery], Awaitable[None]] | Callable[[Delivery], None]
BatchHandler = Callable[[list[Delivery]], Awaitable[Mapping[str, Any] | None]]

C = TypeVar("C")  # the consumer
C_in = TypeVar("C_in", contravariant=True)


class Slots(Protocol[C_in]):
    """Slot accounting as a consumer sees it (the dispatcher implements it).

    At its refill mark, while nobody else wants work (`room_total` 0) and `direct`, a
    consumer takes what it has room for itself (`receive_nowait`): if it got all of
    it, its room stays 0 and it sets its own `held`; if not, it tells `took`."""

    room_total: int  # the room of every consumer that wants work
    direct: bool  # work may be taken straight from the broker now
    receive_nowait: Callable[[list[str]], list[Delivery]] | None

    def took(self, c: C_in, held: int) -> None:
        """c, at its mark, took fewer than it had room for (the queue ran dry)."""

    def refill(self, c: C_in, n: int) -> bool:
        """`n` deliveries done; True if the caller should `await dispatch(c)`."""

    def has_spare(self, c: C_in) -> None:
        """c, above its refill mark, has a spare slot now (it may take new work)."""

    async def dispatch(self, hint: C_in | None) -> None:
        """Lease ready messages to hungry consumers."""


class Guard(Protocol):
    """The rate limit and circuit breakers as a consumer sees them."""

    @property
    def active(self) -> bool:
        """Any guard set at all (read once per consumer loop)."""

    @property
    def breakers(self) -> Mapping[str, object]:
        """The circuit breakers by message type; empty while none exists."""

    async def hold_back(self, d: Delivery) -> bool:
        """True if the delivery was deferred instead of handled now."""

    def succeeded(self, d: Delivery) -> None:
        """The handler succeeded on `d`."""

    def failed(self, d: Delivery) -> None:
        """The handler failed on `d`."""


class Reports(Protocol[C_in]):
    """What a consumer tells its pool."""

    async def warmed(self, c: C_in) -> None:
        """c finished its cold start and takes work from now on."""

    def ack_rejected(self, c: C_in, d: Delivery) -> None:
        """c's lease of d ran out before its ack: the work is a duplicate."""

    def dead_lettered(self, c: C_in, d: Delivery, error: str) -> None:
        """c's nack of d sent it to the DLQ."""


@dataclass(frozen=True, slots=True)
class ConsumerContext(Generic[C]):
    """What every consumer of one engine shares: the clock, the broker, its settings
    and the parts it reports to."""

    clock: Clock
    broker: Broker
    ack_nowait: Callable[[Any], None] | None  # the broker's non-suspending ack, if any
    slots: Slots[C]
    guards: Guard
    reports: Reports[C]
    batch_handler: BatchHandler | None
    holding_limit: int
    batch_size: int
    batch_linger: float
    startup_delay: float
    handler_timeout: float | None
    latency: LatencyHistogram  # the pool's, which every consumer's histogram feeds

    @property
    def batching(self) -> bool:
        """Whether consumers hand batches to a batch handler."""
        return self.batch_handler is not None and self.batch_size > 1
