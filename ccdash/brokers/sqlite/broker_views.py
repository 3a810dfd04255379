"""The SqliteBroker's view methods (counts, leases, the DLQ as of now), read on the loop.

A mixin of SqliteBroker, apart from the read functions in `views` so that the link
(which uses those functions) and this mixin (which uses the link) import one way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ccdash.brokers.base import DeadLetter, QueueConfig, QueueStats
from ccdash.brokers.sqlite.views import (
    oldest_ready,
    read_dead_letters,
    read_holder_counts,
    read_leases,
)

if TYPE_CHECKING:
    from ccdash.brokers.base import LeaseInfo
    from ccdash.brokers.sqlite.link import Link
    from ccdash.clock import Clock


class BrokerViews:
    """The SqliteBroker's views: counts, leases and the DLQ as of now, read on the loop."""

    _link: Link
    _read: Any
    _closed: bool
    _last: tuple[QueueStats, list[DeadLetter]] | None
    _base: dict[str, int]
    clock: Clock
    config: QueueConfig
    offset: float
    owner: str

    def _ready(self) -> Link:  # the broker's: opens the file if need be
        raise NotImplementedError

    def ready_count(self) -> int:
        """Messages a receive now could lease (what is due included)."""
        if self._read is None:
            return 0 if self._closed else self._ready().counters["ready"]
        link = self._link
        now_w = self.clock.now() + self.offset
        if now_w < link.due:
            return link.counters["ready"] + len(link.staged)
        c, (due, expired, last), unseen = link.read_file(
            self._read, now_w, self.config.max_attempts
        )
        return c["ready"] + due + expired - last + unseen

    def stats(self) -> QueueStats:
        """Counts now (deadlines passed but not yet reaped included), and totals."""
        if self._read is None:
            if self._closed and self._last is not None:
                return self._last[0]
            self._ready()
        c, (due, expired, last), unseen = self._link.read_file(
            self._read, self.clock.now() + self.offset, self.config.max_attempts
        )
        base = self._base
        return QueueStats(
            ready=c["ready"] + due + expired - last + unseen,
            delayed=c["delayed"] - due,
            in_flight=c["leased"] - expired,
            dead=c["dead"] + last,
            published=c["published"] - base["published"] + unseen,
            acked=c["acked"] - base["acked"],
            dead_lettered=c["dead_lettered"] - base["dead_lettered"] + last,
            redelivered=c["redelivered"] - base["redelivered"],
            capacity=self.config.capacity,
        )

    def outstanding(self) -> int:
        """Messages not yet acked or dead-lettered, as of our newest commit."""
        link = self._link
        if link is None:
            return 0
        c = link.counters
        return c["ready"] + c["delayed"] + c["leased"] + len(link.staged)

    def _viewable(self) -> bool:
        if self._read is None and not self._closed:
            self._ready()
        return self._read is not None

    def leases(self, limit: int | None = None) -> list[LeaseInfo]:
        """Live leases (every process's), soonest deadline first."""
        if not self._viewable():
            return []
        return read_leases(
            self._read, self.clock.now() + self.offset, self.offset, self.owner, limit
        )

    def holder_counts(self) -> dict[str, int]:
        """Live leases per holder (another process's as holder@owner)."""
        if not self._viewable():
            return {}
        return read_holder_counts(self._read, self.clock.now() + self.offset, self.owner)

    def oldest_ready_published_at(self) -> float | None:
        """When the head of the ready queue (the oldest of each priority's) was published,
        on this broker's clock; as of our newest commit."""
        if not self._viewable():
            return None
        wall = oldest_ready(self._read)
        return None if wall is None else wall - self.offset

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The DLQ, newest first (as it was at close, once closed)."""
        if not self._viewable():
            return [] if self._last is None else self._last[1][:limit]
        return read_dead_letters(
            self._read, self.clock.now() + self.offset, self.offset, self.config.max_attempts, limit
        )
