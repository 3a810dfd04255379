"""The SQLite store's operations: what callers ask of the queue, run by the writer thread.

Each method runs inside the writer's open `BEGIN IMMEDIATE` transaction (see
`frame` for the counters, deadlines and reaping they share), so it sees
and changes the file atomically with the rest of its batch. Receipts name the
row and its delivery count, so a receipt from before a redelivery never
matches the new lease.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ccdash.brokers.base import (
    REASON_FAILED,
    Delivery,
    QueueConfig,
    ReceiptRejected,
    decode_json,
)
from ccdash.brokers.sqlite.frame import (
    RECEIPT_BITS,
    RECEIPT_MASK,
    StoreFrame,
    append_history,
    split_receipt,
)
from ccdash.brokers.sqlite.schema import (
    READ_BUSY_TIMEOUT_MS,
    SqliteTarget,
    begin_immediate,
    check_path,
    connect,
    create_private,
    ensure_schema,
    tighten_companions,
)
from ccdash.text import sanitize

FULL = object()  # publish result: no room (the caller waits and tries again)

_SELECT_READY = (
    "SELECT id, mid, body, is_json, attempt, deliveries, priority, published "
    "FROM msgs WHERE state = 0 ORDER BY priority DESC, id LIMIT ?"
)
_INSERT = (
    "INSERT INTO msgs (id, mid, priority, state, body, is_json, published) "
    "VALUES (?, ?, ?, 0, ?, ?, ?)"
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


class Store(StoreFrame):
    """The operations of the queue, on the writer thread's connection."""

    # -- publishing -------------------------------------------------------------

    def publish(
        self,
        now: float,
        mid: str,
        data: bytes,
        is_json: bool,
        priority: int,
        dedup_id: str | None,
        accepted: bool,
        judge: float,
    ) -> Any:
        """Insert a message published at `now`. `accepted`: publish_nowait already
        admitted it (no capacity check); otherwise FULL when there is no room. Leases
        are reaped as of `judge` (held back while the process is stalled), never `now`."""
        self.reap(judge)
        now_w = now + self.offset
        ex = self.conn.execute
        if dedup_id is not None:
            row = ex(
                "SELECT mid FROM dedup WHERE key = ? AND expires > ?", (dedup_id, now_w)
            ).fetchone()
            if row is not None:
                return row[0]
        c = self.c
        cap = self.config.capacity
        if not accepted and cap is not None and c["ready"] + c["delayed"] + c["leased"] >= cap:
            return FULL
        c["seq"] += 1
        row = (c["seq"], mid, priority, data, is_json, now_w)
        try:
            ex(_INSERT, row)
        except sqlite3.IntegrityError:  # a foreign writer inserted rows behind the counters
            self.reconcile(now_w)
            c["seq"] += 1
            ex(_INSERT, (c["seq"], *row[1:]))
        if dedup_id is not None:
            ex(
                "INSERT OR REPLACE INTO dedup VALUES (?, ?, ?)",
                (dedup_id, mid, (now + self.config.dedup_window) + self.offset),
            )
        c["ready"] += 1
        c["published"] += 1
        return mid

    # -- leasing ------------------------------------------------------------------

    def receive(self, now: float, holders: Sequence[str], leased_at: float) -> list[Delivery]:
        """Lease up to len(holders) ready messages, highest priority, then oldest first,
        for a visibility timeout from `leased_at` (the clock's time; `now`, the judging
        time, is held back while the process is stalled)."""
        self.reap(now)
        c = self.c
        n = min(len(holders), c["ready"])
        if n <= 0:
            return []
        try:
            rows = self.conn.execute(_SELECT_READY, (n,)).fetchall()
        except sqlite3.OperationalError as exc:
            if "decode" not in str(exc):
                raise
            self._bury_bad_ids(n, now + self.offset)  # then read what is left
            return self.receive(now, holders, leased_at)
        deadline = leased_at + self.config.visibility_timeout
        due = deadline + self.offset
        owner, offset = self.owner, self.offset
        out: list[Delivery] = []
        updates = []
        redelivered = 0
        for (rid, mid, body, is_json, attempt, deliveries, prio, published), holder in zip(
            rows, holders, strict=False
        ):
            if not (
                type(body) is bytes
                and type(mid) is str
                and type(attempt) is int
                and type(deliveries) is int
                and type(prio) is int
                and type(published) is float
            ):  # a foreign writer's row: a TEXT body, a BLOB id, a TEXT attempt, ...
                self._bury_foreign(rid, (mid, body, attempt, deliveries, prio, published), now)
                continue
            try:
                value = decode_json(body) if is_json else bytes(body)
            except (ValueError, RecursionError) as exc:  # corrupt, or a foreign writer's
                why = (
                    "nested too deeply"
                    if isinstance(exc, RecursionError)
                    else (f"{type(exc).__name__}: {exc}")
                )
                self._bury_undecodable(rid, mid, attempt + 1, f"body: {why}", now + offset)
                continue
            attempt += 1
            deliveries = (deliveries + 1) & RECEIPT_MASK
            if attempt > 1:
                redelivered += 1
            updates.append((attempt, deliveries, due, owner, holder, rid))
            out.append(
                Delivery(
                    mid,
                    value,
                    attempt,
                    holder,
                    rid << RECEIPT_BITS | deliveries,
                    prio,
                    deadline,
                    published - offset,
                )
            )
        self.conn.executemany(_LEASE, updates)
        k = len(out)
        c["ready"] -= k
        c["leased"] += k
        c["redelivered"] += redelivered
        if due < self.due:
            self.due = due
        return out

    def _bury_bad_ids(self, n: int, now_w: float) -> None:
        """The next `n` ready rows hold a message id that is not UTF-8 (a foreign
        writer): those get an id of ours and go to the DLQ as undecodable."""
        rows = self.conn.execute(
            "SELECT id, CAST(mid AS BLOB), attempt FROM msgs WHERE state = 0 "
            "ORDER BY priority DESC, id LIMIT ?",
            (n,),
        ).fetchall()
        for rid, raw, attempt in rows:
            try:
                bytes(raw).decode()
            except UnicodeDecodeError:
                mid = f"undecodable-{rid}"
                self.conn.execute("UPDATE msgs SET mid = ? WHERE id = ?", (mid, rid))
                self._bury_undecodable(
                    rid,
                    mid,
                    attempt + 1,
                    "message id is not UTF-8: " + sanitize(bytes(raw), 60),
                    now_w,
                )

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
        if key is None or not self.conn.execute(_ACK, (key[0], key[1], now + self.offset)).rowcount:
            raise ReceiptRejected(f"receipt {receipt!r} is not a live lease")
        self.c["leased"] -= 1
        self.c["acked"] += 1

    def nack(self, now: float, receipt: Any, error: str, delay: float | None) -> bool:
        """Retry after a backoff (or `delay`), or dead-letter at max_attempts."""
        rid, (attempt, holder, history) = self._live(now, receipt)
        now_w = now + self.offset
        history = append_history(history, now_w, holder, attempt, REASON_FAILED, error)
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
            (self.owner, holder),
        ).fetchall()
        for row in rows:
            self.end_lease(row, reason, error, now + self.offset)
        return len(rows)

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
                "reason = NULL, last_error = NULL, history = NULL WHERE id = ?",
                (c["seq"], rid),
            )
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


def open_store(
    target: SqliteTarget, config: QueueConfig, owner: str, offset: float, now: float
) -> tuple[Store, sqlite3.Connection, dict[str, int]]:
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
        begin_immediate(conn, path)
        try:
            store.begin()
            store.register(now)
            counters = store.end()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        read = connect(target, READ_BUSY_TIMEOUT_MS)
    except BaseException:
        conn.close()
        raise
    tighten_companions(path)
    return store, read, counters


def close_opened(opened: tuple[Store, sqlite3.Connection, dict[str, int]]) -> None:
    """Close what `open_store` opened, unused (its caller went away, or another open won)."""
    opened[0].conn.close()
    opened[1].close()


__all__ = ["Store", "FULL", "close_opened", "open_store"]
