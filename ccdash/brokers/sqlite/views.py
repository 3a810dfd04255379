"""The SQLite broker's read side: what operators see, read on the event loop.

Reads in WAL mode never wait for the writer; each sees the last commit. Views
show the queue as of now even where no reap has run yet: a lease past its
deadline is not shown as live, and one on its last attempt shows as dead.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

from ccdash.brokers.base import (
    REASON_EXPIRED,
    BrokerError,
    DeadLetter,
    HistoryEntry,
    LeaseInfo,
    decode_body,
)
from ccdash.brokers.sqlite.frame import history_entries
from ccdash.brokers.sqlite.schema import COUNTER_COLUMNS


@contextlib.contextmanager
def read_errors(path: str) -> Iterator[None]:
    """A read a publish depends on that fails (a corrupt file, an I/O error, a lock past
    the read timeout) raises the one-line BrokerError a failed write raises, so the
    publisher (and the CLI) see the broker's error, not sqlite3's."""
    try:
        yield
    except sqlite3.Error as exc:
        raise BrokerError(f"sqlite broker {path}: read failed: {exc}") from None


def tolerant_text(raw: bytes) -> str:
    """Text a foreign writer may have left undecodable, escaped: views show it, never
    fail on it (an error there would take the dashboard down)."""
    return raw.decode("utf-8", "backslashreplace")


def counters(conn: sqlite3.Connection) -> dict[str, int]:
    """The counters row as last committed."""
    row = conn.execute(f"SELECT {', '.join(COUNTER_COLUMNS)} FROM counters WHERE k = 0").fetchone()
    return dict(zip(COUNTER_COLUMNS, row, strict=True))


def overdue(conn: sqlite3.Connection, now_w: float, max_attempts: int) -> tuple[int, int, int]:
    """Unreaped changes as of now: (retries due, leases expired, of those on their last
    attempt, which the next reap dead-letters)."""
    due = conn.execute(
        "SELECT count(*) FROM msgs WHERE state = 1 AND due <= ?", (now_w,)
    ).fetchone()[0]
    expired, last = conn.execute(
        "SELECT count(*), total(attempt >= ?) FROM msgs WHERE state = 2 AND due <= ?",
        (max_attempts, now_w),
    ).fetchone()
    return due, expired, int(last)


# Each priority's head of the ready queue, found by a loose index scan over the partial
# index msgs_ready(priority DESC, id): one seek per priority present, never a row scan.
_OLDEST_READY = """
WITH RECURSIVE p(v) AS (
    SELECT max(priority) FROM msgs WHERE state = 0
    UNION ALL
    SELECT (SELECT max(priority) FROM msgs WHERE state = 0 AND priority < p.v)
    FROM p WHERE p.v IS NOT NULL
)
SELECT min((SELECT published FROM msgs WHERE state = 0 AND priority = p.v
            ORDER BY id LIMIT 1)) FROM p WHERE p.v IS NOT NULL
"""


def oldest_ready(conn: sqlite3.Connection) -> float | None:
    """The earliest publish time (wall) among the heads of the ready priorities."""
    row = conn.execute(_OLDEST_READY).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def duplicate_of(conn: sqlite3.Connection, key: str, now_w: float) -> str | None:
    """The message id a dedup id stands for, while its window lasts."""
    row = conn.execute(
        "SELECT mid FROM dedup WHERE key = ? AND expires > ?", (key, now_w)
    ).fetchone()
    return None if row is None else str(row[0])


def _holder(holder: str, owner: str, me: str) -> str:
    # Another process's consumer ids may repeat ours: name the owner too.
    return holder if owner == me else f"{holder}@{owner}"


def read_leases(
    conn: sqlite3.Connection, now_w: float, offset: float, me: str, limit: int | None
) -> list[LeaseInfo]:
    """Live leases of every process, soonest deadline first."""
    rows = conn.execute(
        "SELECT mid, holder, owner, attempt, due, priority FROM msgs "
        "WHERE state = 2 AND due > ? ORDER BY due, id LIMIT ?",
        (now_w, -1 if limit is None else limit),
    )
    return [
        LeaseInfo(mid, _holder(holder, owner, me), attempt, due - offset, prio)
        for mid, holder, owner, attempt, due, prio in rows
    ]


def read_holder_counts(conn: sqlite3.Connection, now_w: float, me: str) -> dict[str, int]:
    """Live leases per holder (another process's holders as holder@owner)."""
    rows = conn.execute(
        "SELECT owner, holder, count(*) FROM msgs WHERE state = 2 AND due > ? "
        "GROUP BY owner, holder",
        (now_w,),
    )
    return {_holder(holder, owner, me): n for owner, holder, n in rows}


def _history(text: str | None, offset: float) -> list[HistoryEntry]:
    return [
        HistoryEntry(at - offset, holder, attempt, outcome, error)
        for at, holder, attempt, outcome, error in history_entries(text)
    ]


def read_dead_letters(
    conn: sqlite3.Connection, now_w: float, offset: float, max_attempts: int, limit: int | None
) -> list[DeadLetter]:
    """The DLQ newest first, including last-attempt leases that ran out unreaped."""
    out: list[DeadLetter] = []
    expiring = conn.execute(
        "SELECT mid, attempt, priority, body, is_json, due, holder, history FROM msgs "
        "WHERE state = 2 AND due <= ? AND attempt >= ? ORDER BY due DESC, id DESC LIMIT ?",
        (now_w, max_attempts, -1 if limit is None else limit),
    )
    error = "visibility timeout passed"
    for mid, attempt, prio, body, is_json, due, holder, history in expiring:
        past = _history(history, offset)
        past.append(HistoryEntry(due - offset, holder or "", attempt, REASON_EXPIRED, error))
        out.append(
            DeadLetter(
                mid,
                REASON_EXPIRED,
                attempt,
                error,
                prio,
                _body(body, is_json),
                due - offset,
                tuple(past[-20:]),
            )
        )
    if limit is not None:
        limit -= len(out)
        if limit <= 0:
            return out
    rows = conn.execute(
        "SELECT mid, reason, attempt, last_error, priority, body, is_json, due, history "
        "FROM msgs WHERE state = 3 ORDER BY dseq DESC LIMIT ?",
        (-1 if limit is None else limit,),
    )
    for mid, reason, attempt, last_error, prio, body, is_json, due, history in rows:
        out.append(
            DeadLetter(
                mid,
                reason,
                attempt,
                last_error or "",
                prio,
                _body(body, is_json),
                due - offset,
                tuple(_history(history, offset)),
            )
        )
    return out


def _body(body: bytes, is_json: int) -> Any:
    """A body to show: its value, or its bytes when it does not decode (one
    corrupt row never breaks the view of the others)."""
    if not isinstance(body, bytes):  # a foreign writer's TEXT, INTEGER or REAL
        return str(body).encode()
    try:
        return decode_body(body, bool(is_json))
    except (ValueError, RecursionError):
        return bytes(body)
