"""The loss checker's own records, kept apart from the engine's counters.

The workload writes down every id it published; a `Tap` around the handler
writes down every successful completion. At the end, an id that was neither
completed, nor dead-lettered, nor still queued was lost.

On a shared broker (a Redis fleet) other workers handle some of the workload's
messages with their own handlers, out of sight of the Tap: `record_elsewhere`
notes the ids the broker no longer holds (acked by someone), after the run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ccdash.brokers.base import Delivery
from ccdash.clock import Clock
from ccdash.engine import Engine
from ccdash.hints import is_async_callable
from ccdash.interrupts import call_in_thread

Completion = Callable[[str, str, float], None]  # message id, consumer id, clock time


@dataclass(frozen=True, slots=True)
class LossCheck:
    """The loss checker's verdict: ids it cannot place, and how many of them are lost."""

    unaccounted: list[str]  # published, not completed, acked elsewhere or dead: publish order
    still_queued: int
    lost: int


class Ledger:
    """Published ids with their publish times; first completion time per id; duplicates."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.published: dict[str, float] = {}  # id -> publish time, in publish order
        self.priority: dict[str, int] = {}
        self.done: dict[str, float] = {}  # id -> first completion time
        self.open: dict[str, None] = {}  # published and not completed yet, in publish order
        self.completions = 0
        self.duplicates = 0
        self.listeners: list[Completion] = []
        self.elsewhere: set[str] = set()  # acked by another worker of a shared broker
        self.unconfirmed = 0  # of those, how many the fleet's acked counter cannot cover

    def record_publish(self, mid: str, at: float, priority: int = 0) -> None:
        """The workload published `mid` at `at`."""
        self.published[mid] = at
        if mid not in self.done:
            self.open[mid] = None
        if priority:
            self.priority[mid] = priority

    def record_completion(self, mid: str, consumer: str) -> None:
        """A handler returned successfully for `mid`."""
        now = self.clock.now()
        self.completions += 1
        if mid in self.done:
            self.duplicates += 1
        else:
            self.done[mid] = now
            self.open.pop(mid, None)
        for fn in self.listeners:
            fn(mid, consumer, now)

    def record_elsewhere(self, ids: set[str], unconfirmed: int = 0) -> None:
        """Ids another worker acked (no completion time: not in the latencies);
        `unconfirmed` of them vanished without a matching ack in the fleet's counter."""
        self.elsewhere |= ids - self.done.keys()
        self.unconfirmed = unconfirmed

    def check(
        self, still_queued: int, dead_ids: Collection[str], purged: int = 0, placed_unseen: int = 0
    ) -> LossCheck:
        """Count what is lost: ids neither completed, acked elsewhere nor dead, beyond what
        the broker still holds (`still_queued`) or an operator purged. `placed_unseen`:
        messages placed where the caller cannot list them (a DLQ view that is partial,
        acks by other workers before the run's end) - counted as placed, so a live
        reading never shows a loss that is not one. The headless report and the
        dashboard's header both read this (the dashboard costs O(open ids) per tick)."""
        elsewhere = self.elsewhere
        unaccounted = [m for m in self.open if m not in elsewhere and m not in dead_ids]
        lost = max(0, len(unaccounted) - still_queued - purged - placed_unseen)
        return LossCheck(unaccounted, still_queued, lost + self.unconfirmed)


class Tap:
    """Wraps a per-message handler; records each successful completion in the ledger."""

    def __init__(self, inner: Callable[[Delivery], Any], ledger: Ledger) -> None:
        self.inner = inner
        self.ledger = ledger
        self._async = is_async_callable(inner)

    async def __call__(self, d: Delivery) -> None:
        """Run the handler; a normal return is a completion."""
        if self._async:
            await self.inner(d)
        else:  # in a thread, as the engine runs a sync handler
            await call_in_thread(self.inner, d)
        self.ledger.record_completion(d.message_id, d.consumer_id)


class BatchTap:
    """Wraps a batch handler; every message not in its failure map completed."""

    def __init__(
        self, inner: Callable[[list[Delivery]], Awaitable[Mapping[str, Any] | None]], ledger: Ledger
    ) -> None:
        self.inner = inner
        self.ledger = ledger

    async def __call__(self, batch: Sequence[Delivery]) -> Mapping[str, Any] | None:
        """Run the batch handler; record the messages that succeeded."""
        result = await self.inner(list(batch))
        failures = result or {}
        for d in batch:
            if d.message_id not in failures:
                self.ledger.record_completion(d.message_id, d.consumer_id)
        return result


def ledger_of(engine: Engine) -> Ledger:
    """The ledger of the engine's tapped handler; taps an untapped engine before start."""
    for h in (engine.handler, engine.batch_handler):
        if isinstance(h, Tap | BatchTap):
            return h.ledger
    if engine.running:
        raise ValueError(
            "the engine's handler is not tapped for loss checking: make it with "
            "Scenario.make_engine, or create the Workload before starting it"
        )
    ledger = Ledger(engine.clock)
    if engine.handler is not None:
        engine.handler = Tap(engine.handler, ledger)
    if engine.batch_handler is not None:
        engine.batch_handler = BatchTap(engine.batch_handler, ledger)
    return ledger
