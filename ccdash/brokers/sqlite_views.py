"""The SQLite broker's read side: what operators see, read on the event loop.

Reads in WAL mode never wait for the writer; each sees the last commit. Views
show the queue as of now even where no reap has run yet: a lease past its
deadline is not shown as live, and one on its last attempt shows as dead.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from ccdash.brokers.base import (
    REASON_EXPIRED,
    DeadLetter,
    HistoryEntry,
    LeaseInfo,
    QueueConfig,
    QueueStats,
    decode_body,
)
from ccdash.brokers.sqlite_schema import COUNTER_COLUMNS

if TYPE_CHECKING:
    from ccdash.brokers.sqlite_link import Link
    from ccdash.clock import Clock

_INF = float("inf")


def counters(conn: sqlite3.Connection) -> dict[str, int]:
    """The counters row as last committed."""
    row = conn.execute(f"SELECT {', '.join(COUNTER_COLUMNS)} FROM counters WHERE k = 0").fetchone()
    return dict(zip(COUNTER_COLUMNS, row, strict=True))


def next_deadline(conn: sqlite3.Connection) -> float:
    """The earliest retry or lease deadline in the file (wall), or +inf."""
    a = conn.execute("SELECT due FROM msgs WHERE state = 1 ORDER BY due LIMIT 1").fetchone()
    b = conn.execute("SELECT due FROM msgs WHERE state = 2 ORDER BY due LIMIT 1").fetchone()
    return min(a[0] if a else _INF, b[0] if b else _INF)


def overdue(conn: sqlite3.Connection, now_w: float, max_attempts: int) -> tuple[int, int, int]:
    """Unreaped changes as of now: (retries due, leases expired, of those on their last
    attempt, which the next reap dead-letters)."""
    due = conn.execute("SELECT count(*) FROM msgs WHERE state = 1 AND due <= ?",
                       (now_w,)).fetchone()[0]
    expired, last = conn.execute(
        "SELECT count(*), total(attempt >= ?) FROM msgs WHERE state = 2 AND due <= ?",
        (max_attempts, now_w)).fetchone()
    return due, expired, int(last)


def duplicate_of(conn: sqlite3.Connection, key: str, now_w: float) -> str | None:
    """The message id a dedup id stands for, while its window lasts."""
    row = conn.execute("SELECT mid FROM dedup WHERE key = ? AND expires > ?",
                       (key, now_w)).fetchone()
    return None if row is None else str(row[0])


def _holder(holder: str, owner: str, me: str) -> str:
    # Another process's consumer ids may repeat ours: name the owner too.
    return holder if owner == me else f"{holder}@{owner}"


def read_leases(conn: sqlite3.Connection, now_w: float, offset: float, me: str,
           limit: int | None) -> list[LeaseInfo]:
    """Live leases of every process, soonest deadline first."""
    rows = conn.execute(
        "SELECT mid, holder, owner, attempt, due, priority FROM msgs "
        "WHERE state = 2 AND due > ? ORDER BY due, id LIMIT ?",
        (now_w, -1 if limit is None else limit))
    return [LeaseInfo(mid, _holder(holder, owner, me), attempt, due - offset, prio)
            for mid, holder, owner, attempt, due, prio in rows]


def read_holder_counts(conn: sqlite3.Connection, now_w: float, me: str) -> dict[str, int]:
    """Live leases per holder (another process's holders as holder@owner)."""
    rows = conn.execute(
        "SELECT owner, holder, count(*) FROM msgs WHERE state = 2 AND due > ? "
        "GROUP BY owner, holder", (now_w,))
    return {_holder(holder, owner, me): n for owner, holder, n in rows}


def _history(text: str | None, offset: float) -> list[HistoryEntry]:
    return [HistoryEntry(at - offset, holder, attempt, outcome, error)
            for at, holder, attempt, outcome, error in (json.loads(text) if text else [])]


def read_dead_letters(conn: sqlite3.Connection, now_w: float, offset: float, max_attempts: int,
                 limit: int | None) -> list[DeadLetter]:
    """The DLQ newest first, including last-attempt leases that ran out unreaped."""
    out: list[DeadLetter] = []
    expiring = conn.execute(
        "SELECT mid, attempt, priority, body, is_json, due, holder, history FROM msgs "
        "WHERE state = 2 AND due <= ? AND attempt >= ? ORDER BY due DESC, id DESC LIMIT ?",
        (now_w, max_attempts, -1 if limit is None else limit))
    error = "visibility timeout passed"
    for mid, attempt, prio, body, is_json, due, holder, history in expiring:
        past = _history(history, offset)
        past.append(HistoryEntry(due - offset, holder or "", attempt, REASON_EXPIRED, error))
        out.append(DeadLetter(mid, REASON_EXPIRED, attempt, error, prio,
                              decode_body(body, bool(is_json)), due - offset, tuple(past[-20:])))
    if limit is not None:
        limit -= len(out)
        if limit <= 0:
            return out
    rows = conn.execute(
        "SELECT mid, reason, attempt, last_error, priority, body, is_json, due, history "
        "FROM msgs WHERE state = 3 ORDER BY dseq DESC LIMIT ?",
        (-1 if limit is None else limit,))
    for mid, reason, attempt, last_error, prio, body, is_json, due, history in rows:
        out.append(DeadLetter(mid, reason, attempt, last_error or "", prio,
                              decode_body(body, bool(is_json)), due - offset,
                              tuple(_history(history, offset))))
    return out


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
            self._read, now_w, self.config.max_attempts)
        return c["ready"] + due + expired - last + unseen

    def stats(self) -> QueueStats:
        """Counts now (deadlines passed but not yet reaped included), and totals."""
        if self._read is None:
            if self._closed and self._last is not None:
                return self._last[0]
            self._ready()
        c, (due, expired, last), unseen = self._link.read_file(
            self._read, self.clock.now() + self.offset, self.config.max_attempts)
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
        return read_leases(self._read, self.clock.now() + self.offset, self.offset,
                           self.owner, limit)

    def holder_counts(self) -> dict[str, int]:
        """Live leases per holder (another process's as holder@owner)."""
        if not self._viewable():
            return {}
        return read_holder_counts(self._read, self.clock.now() + self.offset, self.owner)

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The DLQ, newest first (as it was at close, once closed)."""
        if not self._viewable():
            return [] if self._last is None else self._last[1][:limit]
        return read_dead_letters(self._read, self.clock.now() + self.offset, self.offset,
                                 self.config.max_attempts, limit)
