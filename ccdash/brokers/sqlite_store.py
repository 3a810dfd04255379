"""The SQLite broker's write side: every mutation, run by the writer thread.

Each method runs inside the writer's open `BEGIN IMMEDIATE` transaction, so it
sees and changes the file atomically with the rest of its batch. Times passed
in are the injected (monotonic) clock's; they are stored as wall-clock times,
`mono + offset`, so deadlines survive a restart or reboot. Counters live in
one row, read at the start of a batch and written back at its end.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Sequence
from typing import Any

from ccdash.brokers.base import (
    REASON_CONSUMER_FAILED,
    REASON_EXPIRED,
    REASON_FAILED,
    REASON_RELEASED,
    Delivery,
    QueueConfig,
    ReceiptRejected,
)
from ccdash.brokers.sqlite_schema import (
    COUNTER_COLUMNS,
    SqliteTarget,
    check_path,
    connect,
    create_private,
    ensure_schema,
    tighten_companions,
)

RECEIPT_BITS = 24  # receipt = row id << 24 | deliveries (mod 2**24)
RECEIPT_MASK = (1 << RECEIPT_BITS) - 1
HISTORY_LIMIT = 20
HOUSEKEEPING_EVERY = 1.0  # seconds between dedup clean-ups and dead-owner checks
FULL = object()  # publish result: no room (the caller waits and tries again)

_INF = float("inf")
_SELECT_COUNTERS = f"SELECT {', '.join(COUNTER_COLUMNS)} FROM counters WHERE k = 0"
_UPDATE_COUNTERS = (
    f"UPDATE counters SET {', '.join(f'{c} = ?' for c in COUNTER_COLUMNS)} WHERE k = 0"
)
_SELECT_READY = (
    "SELECT id, mid, body, is_json, attempt, deliveries, priority, published "
    "FROM msgs WHERE state = 0 ORDER BY priority DESC, id LIMIT ?"
)
_LEASE = (
    "UPDATE msgs SET state = 2, attempt = ?, deliveries = ?, due = ?, owner = ?, holder = ? "
    "WHERE id = ?"
)
_ACK = "DELETE FROM msgs WHERE id = ? AND state = 2 AND deliveries = ? AND due > ?"
_LIVE = (
    "SELECT attempt, holder, history FROM msgs "
    "WHERE id = ? AND state = 2 AND deliveries = ? AND due > ?"
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


class Store:
    """The mutations of the queue, on the writer thread's connection."""

    def __init__(self, conn: sqlite3.Connection, config: QueueConfig, owner: str,
                 offset: float) -> None:
        self.conn = conn
        self.config = config
        self.owner = owner
        self.offset = offset
        self.host = socket.gethostname()
        self.c: dict[str, int] = {}
        self.due = -_INF  # no delayed/lease deadline before this (wall); -inf: unknown
        self.last_gen: int | None = None
        self.next_housekeeping = -_INF

    # -- the transaction frame ------------------------------------------------

    def begin(self) -> None:
        """Read the counters; if another process wrote since our last batch, its
        deadlines are unknown to us: recompute the next one."""
        row = self.conn.execute(_SELECT_COUNTERS).fetchone()
        self.c = dict(zip(COUNTER_COLUMNS, row, strict=True))
        if self.c["gen"] != self.last_gen:
            self.due = self.next_deadline()

    def end(self) -> dict[str, int]:
        """Write the counters back; returns them as committed."""
        c = self.c
        c["gen"] += 1
        self.conn.execute(_UPDATE_COUNTERS, [c[k] for k in COUNTER_COLUMNS])
        self.last_gen = c["gen"]
        return dict(c)

    def invalidate(self) -> None:
        """The transaction was rolled back: forget what we believed about the file."""
        self.last_gen = None
        self.due = -_INF

    def next_deadline(self) -> float:
        """The earliest retry or lease deadline in the file (wall), or +inf."""
        ex = self.conn.execute
        a = ex("SELECT due FROM msgs WHERE state = 1 ORDER BY due LIMIT 1").fetchone()
        b = ex("SELECT due FROM msgs WHERE state = 2 ORDER BY due LIMIT 1").fetchone()
        return min(a[0] if a else _INF, b[0] if b else _INF)

    # -- time passing -----------------------------------------------------------

    def reap(self, now: float) -> None:
        """Due retries become ready; expired leases fail (lease-expired)."""
        now_w = now + self.offset
        if now_w >= self.next_housekeeping:
            self.housekeeping(now_w)
        if now_w < self.due:
            return
        ex = self.conn.execute
        moved = ex("UPDATE msgs SET state = 0, due = 0 WHERE state = 1 AND due <= ?",
                   (now_w,)).rowcount
        self.c["delayed"] -= moved
        self.c["ready"] += moved
        expired = ex(
            "SELECT id, attempt, holder, history FROM msgs WHERE state = 2 AND due <= ? "
            "ORDER BY due, id", (now_w,)
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
        owners = ex("SELECT token, pid FROM owners WHERE host = ? AND token != ?",
                    (self.host, self.owner)).fetchall()
        n = 0
        for token, pid in owners:
            if pid == os.getpid() or pid_alive(pid):
                continue
            rows = ex("SELECT id, attempt, holder, history FROM msgs "
                      "WHERE state = 2 AND owner = ? ORDER BY due, id", (token,)).fetchall()
            for row in rows:
                self.end_lease(row, REASON_CONSUMER_FAILED,
                               f"process {pid} on {self.host} died holding the lease", now_w)
            ex("DELETE FROM owners WHERE token = ?", (token,))
            n += len(rows)
        return n

    def register(self, now: float) -> int:
        """Join the file as a new owner; returns how many leases of dead processes
        were given back."""
        now_w = now + self.offset
        self.conn.execute("INSERT OR REPLACE INTO owners VALUES (?, ?, ?, ?)",
                          (self.owner, os.getpid(), self.host, now_w))
        self.next_housekeeping = now_w + HOUSEKEEPING_EVERY
        return self.recover(now_w)

    def unregister(self, now: float) -> int:
        """Leave the file: hand back our leases unprocessed and drop our owner row."""
        self.reap(now)
        rows = self.conn.execute(
            "SELECT id, attempt, holder, history FROM msgs WHERE state = 2 AND owner = ?",
            (self.owner,)).fetchall()
        for row in rows:
            self.end_lease(row, REASON_RELEASED, "", now + self.offset)
        self.conn.execute("DELETE FROM owners WHERE token = ?", (self.owner,))
        return len(rows)

    def noop(self, now: float) -> None:
        """Reap and commit nothing else (a flush, a timer kick)."""
        self.reap(now)

    # -- publishing -------------------------------------------------------------

    def publish(self, now: float, mid: str, data: bytes, is_json: bool, priority: int,
                dedup_id: str | None, accepted: bool) -> Any:
        """Insert a message. `accepted`: publish_nowait already admitted it (no
        capacity check); otherwise FULL when there is no room."""
        self.reap(now)
        now_w = now + self.offset
        ex = self.conn.execute
        if dedup_id is not None:
            row = ex("SELECT mid FROM dedup WHERE key = ? AND expires > ?",
                     (dedup_id, now_w)).fetchone()
            if row is not None:
                return row[0]
        c = self.c
        cap = self.config.capacity
        if not accepted and cap is not None and c["ready"] + c["delayed"] + c["leased"] >= cap:
            return FULL
        c["seq"] += 1
        ex("INSERT INTO msgs (id, mid, priority, state, body, is_json, published) "
           "VALUES (?, ?, ?, 0, ?, ?, ?)", (c["seq"], mid, priority, data, is_json, now_w))
        if dedup_id is not None:
            ex("INSERT OR REPLACE INTO dedup VALUES (?, ?, ?)",
               (dedup_id, mid, (now + self.config.dedup_window) + self.offset))
        c["ready"] += 1
        c["published"] += 1
        return mid

    # -- leasing ------------------------------------------------------------------

    def receive(self, now: float, holders: Sequence[str]) -> list[Delivery]:
        """Lease up to len(holders) ready messages, highest priority, then oldest first."""
        self.reap(now)
        c = self.c
        n = min(len(holders), c["ready"])
        if n <= 0:
            return []
        rows = self.conn.execute(_SELECT_READY, (n,)).fetchall()
        deadline = now + self.config.visibility_timeout
        due = deadline + self.offset
        owner, offset = self.owner, self.offset
        out: list[Delivery] = []
        updates = []
        redelivered = 0
        for (rid, mid, body, is_json, attempt, deliveries, prio, published), holder in zip(
            rows, holders, strict=False
        ):
            attempt += 1
            deliveries = (deliveries + 1) & RECEIPT_MASK
            if attempt > 1:
                redelivered += 1
            updates.append((attempt, deliveries, due, owner, holder, rid))
            out.append(Delivery(
                mid, json.loads(body) if is_json else bytes(body), attempt, holder,
                rid << RECEIPT_BITS | deliveries, prio, deadline, published - offset,
            ))
        self.conn.executemany(_LEASE, updates)
        k = len(out)
        c["ready"] -= k
        c["leased"] += k
        c["redelivered"] += redelivered
        if due < self.due:
            self.due = due
        return out

    def _live(self, now: float, receipt: Any) -> tuple[int, tuple[Any, ...]]:
        """The row of a live lease (after reaping), or ReceiptRejected."""
        self.reap(now)
        key = split_receipt(receipt)
        row = None
        if key is not None:
            row = self.conn.execute(_LIVE, (key[0], key[1], now + self.offset)).fetchone()
        if row is None:
            raise ReceiptRejected(f"receipt {receipt!r} is not a live lease")
        return key[0], row  # type: ignore[index]

    def ack(self, now: float, receipt: Any) -> None:
        """Delete the message of a live lease."""
        self.reap(now)
        key = split_receipt(receipt)
        if key is None or not self.conn.execute(
            _ACK, (key[0], key[1], now + self.offset)
        ).rowcount:
            raise ReceiptRejected(f"receipt {receipt!r} is not a live lease")
        self.c["leased"] -= 1
        self.c["acked"] += 1

    def nack(self, now: float, receipt: Any, error: str, delay: float | None) -> bool:
        """Retry after a backoff (or `delay`), or dead-letter at max_attempts."""
        rid, (attempt, holder, history) = self._live(now, receipt)
        now_w = now + self.offset
        history = _append(history, now_w, holder, attempt, REASON_FAILED, error)
        self.c["leased"] -= 1
        if attempt >= self.config.max_attempts:
            self._bury(rid, attempt, REASON_FAILED, error, history, now_w)
            return True
        wait = self.config.backoff(attempt) if delay is None else delay
        self._requeue(rid, attempt, history, now, wait)
        return False

    def defer(self, now: float, receipt: Any, delay: float) -> None:
        """Back unhandled after `delay`; the attempt is given back."""
        rid, (attempt, _holder, history) = self._live(now, receipt)
        self.c["leased"] -= 1
        self._requeue(rid, attempt - 1, history, now, delay)

    def extend(self, now: float, receipt: Any, seconds: float) -> float:
        """Move a live lease's deadline to now + seconds."""
        rid, _ = self._live(now, receipt)
        deadline = now + max(0.0, seconds)
        due = deadline + self.offset
        self.conn.execute("UPDATE msgs SET due = ? WHERE id = ?", (due, rid))
        if due < self.due:
            self.due = due
        return deadline

    def release(self, now: float, receipts: Sequence[Any], reason: str, error: str) -> int:
        """End these leases; visible again at once (or dead at max_attempts)."""
        n = 0
        for receipt in receipts:
            try:
                rid, (attempt, holder, history) = self._live(now, receipt)
            except ReceiptRejected:
                continue
            self.end_lease((rid, attempt, holder, history), reason, error, now + self.offset)
            n += 1
        return n

    def release_holder(self, now: float, holder: str, reason: str, error: str) -> int:
        """End every lease this broker instance gave `holder`."""
        self.reap(now)
        rows = self.conn.execute(
            "SELECT id, attempt, holder, history FROM msgs "
            "WHERE state = 2 AND owner = ? AND holder = ? ORDER BY id",
            (self.owner, holder)).fetchall()
        for row in rows:
            self.end_lease(row, reason, error, now + self.offset)
        return len(rows)

    # -- ending leases --------------------------------------------------------------

    def end_lease(self, row: tuple[Any, ...], reason: str, error: str, now_w: float) -> None:
        """A lease ended without an ack: back to ready, or to the DLQ at max_attempts."""
        rid, attempt, holder, history = row
        self.c["leased"] -= 1
        if reason == REASON_RELEASED:  # never handled: the delivery does not count
            self._make_ready(rid, attempt - 1, history)
            return
        history = _append(history, now_w, holder, attempt, reason, error)
        if attempt >= self.config.max_attempts:
            self._bury(rid, attempt, reason, error, history, now_w)
        else:
            self._make_ready(rid, attempt, history)

    def _make_ready(self, rid: int, attempt: int, history: str | None) -> None:
        # The row keeps its id: a retried message keeps its place among newer ones.
        self.conn.execute(
            "UPDATE msgs SET state = 0, attempt = ?, due = 0, owner = NULL, holder = NULL, "
            "history = ? WHERE id = ?", (attempt, history, rid))
        self.c["ready"] += 1

    def _requeue(self, rid: int, attempt: int, history: str | None, now: float,
                 wait: float) -> None:
        if wait <= 0:
            self._make_ready(rid, attempt, history)
            return
        due = (now + wait) + self.offset
        self.conn.execute(
            "UPDATE msgs SET state = 1, attempt = ?, due = ?, owner = NULL, holder = NULL, "
            "history = ? WHERE id = ?", (attempt, due, history, rid))
        self.c["delayed"] += 1
        if due < self.due:
            self.due = due

    def _bury(self, rid: int, attempt: int, reason: str, error: str, history: str | None,
              now_w: float) -> None:
        c = self.c
        c["dseq"] += 1
        self.conn.execute(
            "UPDATE msgs SET state = 3, attempt = ?, due = ?, dseq = ?, reason = ?, "
            "last_error = ?, owner = NULL, holder = NULL, history = ? WHERE id = ?",
            (attempt, now_w, c["dseq"], reason, error, history, rid))
        c["dead"] += 1
        c["dead_lettered"] += 1

    # -- the DLQ --------------------------------------------------------------------

    def _dead_ids(self, ids: Sequence[str] | None) -> list[int]:
        """Row ids of dead messages: all in DLQ order, or these ids in the given order."""
        ex = self.conn.execute
        if ids is None:
            return [r[0] for r in ex("SELECT id FROM msgs WHERE state = 3 ORDER BY dseq")]
        out: list[int] = []
        seen: set[str] = set()
        for mid in ids:
            if mid in seen:
                continue
            seen.add(mid)
            row = ex("SELECT id FROM msgs WHERE state = 3 AND mid = ?", (mid,)).fetchone()
            if row is not None:
                out.append(row[0])
        return out

    def redrive(self, now: float, ids: Sequence[str] | None) -> int:
        """Dead messages back to the queue with attempts reset, at the tail of their priority."""
        self.reap(now)
        chosen = self._dead_ids(ids)
        c = self.c
        for rid in chosen:
            c["seq"] += 1
            self.conn.execute(
                "UPDATE msgs SET id = ?, state = 0, attempt = 0, due = 0, dseq = NULL, "
                "reason = NULL, last_error = NULL, history = NULL WHERE id = ?", (c["seq"], rid))
        c["dead"] -= len(chosen)
        c["ready"] += len(chosen)
        return len(chosen)

    def purge(self, now: float, ids: Sequence[str] | None) -> int:
        """Delete dead messages for good."""
        self.reap(now)
        chosen = self._dead_ids(ids)
        self.conn.executemany("DELETE FROM msgs WHERE id = ?", [(rid,) for rid in chosen])
        self.c["dead"] -= len(chosen)
        return len(chosen)


def _append(history: str | None, at: float, holder: str | None, attempt: int, outcome: str,
            error: str) -> str:
    """The history with one more failed delivery (the last HISTORY_LIMIT kept)."""
    entries = json.loads(history) if history else []
    entries.append([at, holder or "", attempt, outcome, error])
    return json.dumps(entries[-HISTORY_LIMIT:], separators=(",", ":"))




def open_store(target: SqliteTarget, config: QueueConfig, owner: str, offset: float,
               now: float) -> tuple[Store, sqlite3.Connection, dict[str, int]]:
    """Check and open the file, join it as `owner` (returning the leases of dead
    processes), and open a second connection for reads. Returns the store, the
    read connection and the counters."""
    path = target.path
    check_path(path)
    create_private(path)
    conn = connect(target)
    try:
        ensure_schema(conn, path)
        store = Store(conn, config, owner, offset)
        conn.execute("BEGIN IMMEDIATE")
        try:
            store.begin()
            store.register(now)
            counters = store.end()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        read = connect(target)
    except BaseException:
        conn.close()
        raise
    tighten_companions(path)
    return store, read, counters


__all__ = ["Store", "FULL", "open_store", "split_receipt", "pid_alive"]
