"""What the dashboard reads on each tick, from one place.

`ScreenState` is everything the panes show: the engine's snapshot, the drill
records and the loss checker's live count. `LiveFeed` builds it from a running
engine and its workload; anything else that can produce a `ScreenState` (a
recording being replayed) can drive the same screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ccdash.brokers.base import DeadLetter, HistoryEntry
from ccdash.engine import Engine
from ccdash.engine.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class ScreenState:
    """One tick's worth of facts for the panes."""

    snap: Snapshot
    drills: Sequence[Any] = ()  # drill records (objects or mappings), oldest first
    lost: int | None = None  # the loss checker's count now; None: no checker (your handler)


class Feed(Protocol):
    """A source of screen states."""

    def read(self) -> ScreenState:
        """The state to show now."""
        ...


class LiveFeed:
    """Reads a running engine and its workload (the loss checker lives in the workload)."""

    def __init__(
        self, engine: Engine, workload: Any, *, max_leases: int = 60, max_dead: int = 200
    ) -> None:
        self.engine = engine
        self.workload = workload
        self.max_leases = max_leases
        self.max_dead = max_dead

    def read(self) -> ScreenState:
        """Snapshot, drills and the live loss count, taken together (no await between)."""
        snap = self.engine.snapshot(max_leases=self.max_leases, max_dead=self.max_dead)
        records = tuple(getattr(self.workload, "drill_results", None) or ())
        lost_now = getattr(self.workload, "lost_now", None)
        lost = lost_now() if callable(lost_now) else None
        return ScreenState(snap, records, lost if isinstance(lost, int) else None)

    def locate(self, mid: str) -> DeadLetter | str:
        """Where message `mid` is now: its DeadLetter (payload and delivery history), or
        one line: in flight (with whom, attempt, lease time left), waiting for a retry,
        queued, acked, or unknown; with its failed deliveries so far."""
        broker = self.engine.broker
        for d in broker.dead_letters():
            if d.message_id == mid:
                return d
        now = self.engine.clock.now()
        where = broker.locate(mid)
        if where is not None:
            if where.state == "leased":
                text = (
                    f"{mid}: in flight with {where.holder}, attempt {where.attempt}, "
                    f"lease {max(0.0, where.due - now):.1f}s left"
                )
            elif where.state == "delayed":
                text = (
                    f"{mid}: waiting for a retry after attempt {where.attempt}, "
                    f"visible again in {max(0.0, where.due - now):.1f}s"
                )
            else:
                text = (
                    f"{mid}: queued (ready, priority {where.priority}), "
                    f"{where.attempt} deliveries so far"
                )
            return text + _history(where.history)
        for lease in broker.leases():  # a broker that cannot locate still lists leases
            if lease.message_id == mid:
                return (
                    f"{mid}: in flight with {lease.consumer_id}, attempt {lease.attempt}, "
                    f"lease {max(0.0, lease.deadline - now):.1f}s left"
                )
        ledger = getattr(self.workload, "ledger", None)
        published = getattr(ledger, "published", {})
        done = getattr(ledger, "done", {})
        if mid in done:
            took = done[mid] - published.get(mid, done[mid])
            return f"{mid}: acked (handled {took:.2f}s after it was published)"
        if mid in published:
            return f"{mid}: queued (ready, or waiting for a retry after a failed delivery)"
        return f"{mid}: not a message this dashboard has seen (published elsewhere, or purged)"


def _history(entries: Sequence[HistoryEntry]) -> str:
    """The failed deliveries so far, newest last (at most the last three)."""
    if not entries:
        return "; no failed delivery"
    shown = "; ".join(
        f"attempt {h.attempt} on {h.consumer_id}: {h.outcome} ({h.error})" for h in entries[-3:]
    )
    more = f"{len(entries) - 3} earlier, " if len(entries) > 3 else ""
    return f"; failed before: {more}{shown}"


__all__ = ["Feed", "LiveFeed", "ScreenState"]
