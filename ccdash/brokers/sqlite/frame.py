"""The SQLite store's frame: the transaction around each batch, and what time does.

`StoreFrame` holds what every operation shares: the counters row (read at the
start of a batch, written back at its end), the next deadline, the reaping of
due retries and expired leases, how a lease ends without an ack, how a row that
does not decode goes to the DLQ, and the owner rows through which a process
that died holding leases is noticed. Times passed
in are the injected (monotonic) clock's; they are stored as wall-clock times,
`mono + offset`, so deadlines survive a restart or reboot.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections import deque
from typing import Any

from ccdash.brokers.base import (
    RAW_LIMIT,
    REASON_CONSUMER_FAILED,
    REASON_EXPIRED,
    REASON_RELEASED,
    REASON_UNDECODABLE,
    QueueConfig,
    storable_text,
)
from ccdash.brokers.sqlite.schema import COUNTER_COLUMNS
from ccdash.text import sanitize

RECEIPT_BITS = 24  # receipt = row id << 24 | deliveries (mod 2**24)
RECEIPT_MASK = (1 << RECEIPT_BITS) - 1
HISTORY_LIMIT = 20
HOUSEKEEPING_EVERY = 1.0  # seconds between dedup clean-ups and dead-owner checks

# What receive() reads of a ready row, and the Python type each column must come back as.
_COLUMNS = ("id", "body", "attempt", "deliveries", "priority", "published")
_KINDS = (str, bytes, int, int, int, float)
_SQL_TYPE = {str: "TEXT", bytes: "BLOB", int: "INTEGER", float: "REAL", type(None): "NULL"}

_INF = float("inf")
# The earliest deadline of a state: numbers only (a foreign writer's TEXT sorts after
# every number, and would be the answer where no number is).
_FIRST_DUE = (
    "SELECT due FROM msgs WHERE state = {state} AND typeof(due) IN ('integer', 'real') "
    "ORDER BY due LIMIT 1"
)
_NUM = "typeof({0}) IN ('integer', 'real')"
_INT = "typeof({0}) = 'integer'"
_WELL_TYPED = (
    "UPDATE msgs SET "
    f"due = CASE WHEN {_NUM.format('due')} THEN due ELSE ? END, "
    f"attempt = CASE WHEN {_INT.format('attempt')} THEN attempt ELSE 0 END, "
    f"deliveries = CASE WHEN {_INT.format('deliveries')} THEN deliveries ELSE 0 END, "
    f"priority = CASE WHEN {_INT.format('priority')} THEN priority ELSE 0 END, "
    f"published = CASE WHEN {_NUM.format('published')} THEN published ELSE ? END, "
    "holder = CASE WHEN holder IS NULL THEN NULL ELSE CAST(holder AS TEXT) END "
    f"WHERE state != 0 AND NOT ({_NUM.format('due')} AND {_INT.format('attempt')} AND "
    f"{_INT.format('deliveries')} AND {_INT.format('priority')} AND "
    f"{_NUM.format('published')} AND (holder IS NULL OR typeof(holder) = 'text'))"
)
_SELECT_COUNTERS = f"SELECT {', '.join(COUNTER_COLUMNS)} FROM counters WHERE k = 0"
_UPDATE_COUNTERS = (
    f"UPDATE counters SET {', '.join(f'{c} = ?' for c in COUNTER_COLUMNS)} WHERE k = 0"
)


def split_receipt(receipt: Any) -> tuple[int, int] | None:
    """(row id, deliveries) of a receipt this broker issued; None for anything else."""
    if type(receipt) is not int or receipt < 0:
        return None
    return receipt >> RECEIPT_BITS, receipt & RECEIPT_MASK


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def next_deadline(conn: sqlite3.Connection) -> float:
    """The earliest retry or lease deadline in the file (wall), or +inf."""
    a = conn.execute(_FIRST_DUE.format(state=1)).fetchone()
    b = conn.execute(_FIRST_DUE.format(state=2)).fetchone()
    return min(a[0] if a else _INF, b[0] if b else _INF)


class StoreFrame:
    """Counters, deadlines, reaping, lease endings and owners, on the writer's connection."""

    def __init__(
        self, conn: sqlite3.Connection, config: QueueConfig, owner: str, offset: float
    ) -> None:
        self.conn = conn
        self.config = config
        self.owner = owner
        self.offset = offset
        self.host = socket.gethostname()
        self.c: dict[str, int] = {}
        self._row: tuple[int, ...] = ()  # the counters as the batch found them
        self.due = -_INF  # no delayed/lease deadline before this (wall); -inf: unknown
        self.last_gen: int | None = None
        self.next_housekeeping = -_INF
        # (message id, why) of rows dead-lettered as undecodable: appended on the
        # writer thread once committed, taken on the loop (a deque is safe for that).
        self.undecodable: deque[tuple[str, str]] = deque()
        self._buried: list[tuple[str, str]] = []  # this transaction's, until it commits

    # -- the transaction frame ------------------------------------------------

    def begin(self) -> None:
        """Read the counters; if another process wrote since our last batch, its
        deadlines are unknown to us: recompute the next one."""
        row = self.conn.execute(_SELECT_COUNTERS).fetchone()
        self._row = row
        self.c = dict(zip(COUNTER_COLUMNS, row, strict=True))
        if self.c["gen"] != self.last_gen:
            self.due = self.next_deadline()

    def end(self) -> dict[str, int]:
        """Write the counters back if they changed (a new generation); returns them."""
        c = self.c
        values = [c[k] for k in COUNTER_COLUMNS]
        if tuple(values) != self._row:
            c["gen"] += 1
            values[0] = c["gen"]
            self.conn.execute(_UPDATE_COUNTERS, values)
        self.last_gen = c["gen"]
        return dict(c)

    def committed(self) -> None:
        """The transaction was committed: tell the loop what it dead-lettered."""
        self.undecodable.extend(self._buried)
        self._buried.clear()

    def invalidate(self) -> None:
        """The transaction was rolled back: forget what we believed about the file (and
        what it dead-lettered: a retry finds those rows again)."""
        self.last_gen = None
        self.due = -_INF
        self._buried.clear()

    def next_deadline(self) -> float:
        """The earliest retry or lease deadline in the file (wall), or +inf."""
        return next_deadline(self.conn)

    # -- time passing -----------------------------------------------------------

    def reap(self, now: float) -> None:
        """Due retries become ready; expired leases fail (lease-expired)."""
        now_w = now + self.offset
        if now_w >= self.next_housekeeping:
            self.housekeeping(now_w)
        if now_w < self.due:
            return
        ex = self.conn.execute
        moved = ex(
            "UPDATE msgs SET state = 0, due = 0 WHERE state = 1 AND due <= ?", (now_w,)
        ).rowcount
        self.c["delayed"] -= moved
        self.c["ready"] += moved
        expired = ex(
            "SELECT id, attempt, holder, history FROM msgs WHERE state = 2 AND due <= ? "
            "ORDER BY due, id",
            (now_w,),
        ).fetchall()
        for row in expired:
            self.end_lease(row, REASON_EXPIRED, "visibility timeout passed", now_w)
        self.due = self.next_deadline()

    def housekeeping(self, now_w: float) -> None:
        """Forget expired dedup ids; return the leases of dead processes on this host."""
        self.next_housekeeping = now_w + HOUSEKEEPING_EVERY
        self.conn.execute("DELETE FROM dedup WHERE expires <= ?", (now_w,))
        self.recover(now_w)

    def recover(self, now_w: float) -> int:
        """Leases held by processes of this host that no longer exist go back at once
        (consumer-failed: a message that keeps killing processes is poison too)."""
        ex = self.conn.execute
        owners = ex(
            "SELECT token, pid FROM owners WHERE host = ? AND token != ?", (self.host, self.owner)
        ).fetchall()
        n = 0
        for token, pid in owners:
            if pid == os.getpid() or pid_alive(pid):
                continue
            rows = ex(
                "SELECT id, attempt, holder, history FROM msgs "
                "WHERE state = 2 AND owner = ? ORDER BY due, id",
                (token,),
            ).fetchall()
            for row in rows:
                self.end_lease(
                    row,
                    REASON_CONSUMER_FAILED,
                    f"process {pid} on {self.host} died holding the lease",
                    now_w,
                )
            ex("DELETE FROM owners WHERE token = ?", (token,))
            n += len(rows)
        return n

    def register(self, now: float) -> int:
        """Join the file as a new owner; returns how many leases of dead processes
        were given back."""
        now_w = now + self.offset
        self.conn.execute(
            "INSERT OR REPLACE INTO owners VALUES (?, ?, ?, ?)",
            (self.owner, os.getpid(), self.host, now_w),
        )
        self.next_housekeeping = now_w + HOUSEKEEPING_EVERY
        self.reconcile(now_w)
        return self.recover(now_w)

    def reconcile(self, now_w: float) -> None:
        """Make the counters true to the rows: rows a foreign writer inserted or deleted
        behind them are counted (uncounted ready rows would never be read, and a taken
        next id failed every publish); a row in a state of no meaning goes to the DLQ as
        undecodable; a delayed, leased or dead row's numbers of the wrong kind are made
        numbers (a deadline that is no number is now). Once per open, and when a publish
        finds its id taken. (Ready rows are checked as they are read.)"""
        ex = self.conn.execute
        c = self.c
        ex(_WELL_TYPED, (now_w, now_w))  # a TEXT deadline failed the open itself
        for rid, state in ex(
            "SELECT id, state FROM msgs WHERE state NOT IN (0, 1, 2, 3)"
        ).fetchall():
            c["dseq"] += 1
            ex(
                "UPDATE msgs SET state = 3, due = ?, dseq = ?, reason = ?, last_error = ?, "
                "owner = NULL, holder = NULL WHERE id = ?",
                (now_w, c["dseq"], REASON_UNDECODABLE, f"a row in unknown state {state!r}", rid),
            )
            c["dead_lettered"] += 1
        c["seq"] = max(c["seq"], ex("SELECT coalesce(max(id), 0) FROM msgs").fetchone()[0])
        for state, name in enumerate(("ready", "delayed", "leased", "dead")):
            c[name] = ex("SELECT count(*) FROM msgs WHERE state = ?", (state,)).fetchone()[0]
        self.due = self.next_deadline()

    def unregister(self, now: float) -> int:
        """Leave the file: hand back our leases unprocessed and drop our owner row."""
        self.reap(now)
        rows = self.conn.execute(
            "SELECT id, attempt, holder, history FROM msgs WHERE state = 2 AND owner = ?",
            (self.owner,),
        ).fetchall()
        for row in rows:
            self.end_lease(row, REASON_RELEASED, "", now + self.offset)
        self.conn.execute("DELETE FROM owners WHERE token = ?", (self.owner,))
        return len(rows)

    def noop(self, now: float) -> None:
        """Reap and commit nothing else (a flush, a timer kick)."""
        self.reap(now)

    # -- ending leases --------------------------------------------------------------

    def end_lease(self, row: tuple[Any, ...], reason: str, error: str, now_w: float) -> None:
        """A lease ended without an ack: back to ready, or to the DLQ at max_attempts."""
        rid, attempt, holder, history = row
        self.c["leased"] -= 1
        if reason == REASON_RELEASED:  # never handled: the delivery does not count
            self._make_ready(rid, attempt - 1, history)
            return
        history = append_history(history, now_w, holder, attempt, reason, error)
        if attempt >= self.config.max_attempts:
            self._bury(rid, attempt, reason, error, history, now_w)
        else:
            self._make_ready(rid, attempt, history)

    def _make_ready(self, rid: int, attempt: int, history: str | None) -> None:
        # The row keeps its id: a retried message keeps its place among newer ones.
        self.conn.execute(
            "UPDATE msgs SET state = 0, attempt = ?, due = 0, owner = NULL, holder = NULL, "
            "history = ? WHERE id = ?",
            (attempt, history, rid),
        )
        self.c["ready"] += 1

    def _requeue(
        self, rid: int, attempt: int, history: str | None, now: float, wait: float
    ) -> None:
        if wait <= 0:
            self._make_ready(rid, attempt, history)
            return
        due = (now + wait) + self.offset
        self.conn.execute(
            "UPDATE msgs SET state = 1, attempt = ?, due = ?, owner = NULL, holder = NULL, "
            "history = ? WHERE id = ?",
            (attempt, due, history, rid),
        )
        self.c["delayed"] += 1
        if due < self.due:
            self.due = due

    def _bury_foreign(self, rid: int, row: tuple[Any, ...], now: float) -> None:
        """A ready row whose columns hold the wrong kinds of value: made well-typed (the
        body becomes the bytes it held, bounded), then buried as undecodable."""
        mid, _body, attempt, deliveries, prio, published = row
        wrong = [
            f"{name} is {_SQL_TYPE.get(type(value), type(value).__name__)}"
            for name, value, kind in zip(_COLUMNS, row, _KINDS, strict=True)
            if type(value) is not kind
        ]
        if type(mid) is not str:
            mid = sanitize(mid, 100) or f"undecodable-{rid}"
        attempt = attempt if type(attempt) is int else 0
        self.conn.execute(
            "UPDATE msgs SET mid = ?, attempt = ?, deliveries = ?, priority = ?, published = ? "
            "WHERE id = ?",
            (
                mid,
                attempt,
                deliveries if type(deliveries) is int else 0,
                prio if type(prio) is int else 0,
                published if type(published) is float else now + self.offset,
                rid,
            ),
        )
        why = "a foreign writer's row: " + ", ".join(wrong)
        self._bury_undecodable(rid, mid, attempt + 1, why, now + self.offset)

    def _bury_undecodable(self, rid: int, mid: str, attempt: int, why: str, now_w: float) -> None:
        """A ready row that does not decode: to the DLQ at once, its body kept
        (bounded, as bytes), the reason told to the loop (`undecodable`)."""
        why = storable_text(why, 300)
        self.conn.execute(
            # Cut as a BLOB (substr() of TEXT counts characters); substr() of an empty
            # BLOB is NULL, which the column refuses.
            "UPDATE msgs SET is_json = 0, "
            "body = CAST(coalesce(substr(CAST(body AS BLOB), 1, ?), '') AS BLOB) "
            "WHERE id = ?",
            (RAW_LIMIT, rid),
        )
        self.c["ready"] -= 1
        self._bury(rid, attempt, REASON_UNDECODABLE, why, None, now_w)
        self._buried.append((mid, why))

    def _bury(
        self, rid: int, attempt: int, reason: str, error: str, history: str | None, now_w: float
    ) -> None:
        c = self.c
        c["dseq"] += 1
        self.conn.execute(
            "UPDATE msgs SET state = 3, attempt = ?, due = ?, dseq = ?, reason = ?, "
            "last_error = ?, owner = NULL, holder = NULL, history = ? WHERE id = ?",
            (attempt, now_w, c["dseq"], reason, error, history, rid),
        )
        c["dead"] += 1
        c["dead_lettered"] += 1


def append_history(
    history: str | None, at: float, holder: str | None, attempt: int, outcome: str, error: str
) -> str:
    """The history with one more failed delivery (the last HISTORY_LIMIT kept)."""
    entries = history_entries(history)
    entries.append([at, holder or "", attempt, outcome, error])
    return json.dumps(entries[-HISTORY_LIMIT:], separators=(",", ":"))


def _entry_ok(entry: object) -> bool:
    """[at, consumer, attempt, outcome, error]: a number, a str, an int and two strs."""
    if not isinstance(entry, list) or len(entry) != 5:
        return False
    at, consumer, attempt, outcome, error = entry
    return (
        type(at) in (float, int)
        and type(attempt) is int
        and all(type(v) is str for v in (consumer, outcome, error))
    )


def history_entries(history: object) -> list[list[Any]]:
    """The delivery history stored in a row, as [at, consumer, attempt, outcome, error]
    lists; what a foreign writer left there that is not such a list is left out (one
    corrupt row must not fail its nack or the DLQ view)."""
    if not history:
        return []
    try:
        entries = json.loads(history) if isinstance(history, str | bytes) else None
    except (ValueError, RecursionError):
        return []
    return [e for e in entries if _entry_ok(e)] if isinstance(entries, list) else []
