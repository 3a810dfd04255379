"""Group commit: one writer thread, one connection, one transaction per batch.

Callers on the event loop queue operations and await a future. The writer
takes everything queued so far, runs it inside one `BEGIN IMMEDIATE`
transaction, commits (the one fsync of the batch, as the durability setting
asks), and hands all the results back to the loop in one callback. Operations
that arrive while a commit is under way form the next batch, so under load many
publishes and acks share each commit, and an idle writer commits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from ccdash.backoff import full_jitter
from ccdash.brokers.base import BrokerError, ReceiptRejected
from ccdash.brokers.sqlite import schema
from ccdash.brokers.sqlite.schema import is_transient
from ccdash.brokers.sqlite.store import Store

log = logging.getLogger("ccdash.brokers.sqlite")

MAX_BATCH = 4096  # operations per transaction: bounds how long one commit keeps others waiting
CHECKPOINT_EVERY = 200  # commits between checkpoints (run by the checkpointer thread)
CHECKPOINT_FORCE = 20_000  # commits without a completed checkpoint: the writer does one itself
# A batch failing for a passing reason (schema.is_transient: another process holds the
# lock past the busy timeout) is retried after a backoff, for up to schema.LOCK_PATIENCE
# seconds (an open waits as long); then it fails like a permanent error (the run ends
# with one line), rather than hanging unseen behind a lock nobody will release.
RETRY_BASE, RETRY_CAP = 0.05, 2.0  # backoff between tries (each try waits the busy timeout)
STORE_BUSY = "store-busy"  # the events telling it (the engine's EventKind of that name)
STORE_RECOVERED = "store-recovered"


def _own_error(exc: BaseException) -> bool:
    """Is this the error of one operation's data (a value SQLite cannot take), not of
    the store (locked, I/O, full, corrupt), which every operation would hit?"""
    return not isinstance(exc, sqlite3.OperationalError) and type(exc) is not sqlite3.DatabaseError


class Op:
    """One queued operation: a Store method and its arguments; the outcome once run."""

    __slots__ = ("method", "args", "fut", "staged", "seq", "result", "error")

    def __init__(
        self,
        method: Callable[..., Any],
        args: tuple[Any, ...],
        fut: asyncio.Future[Any] | None,
        staged: bool = False,
    ) -> None:
        self.method = method
        self.args = args
        self.fut = fut
        self.staged = staged  # publish_nowait: nobody awaits it
        self.seq = 0  # submission order, set by the loop side
        self.result: Any = None
        self.error: BaseException | None = None


Deliver = Callable[[list[Op], "dict[str, int] | None", float, "BaseException | None"], None]
Notify = Callable[[str, "dict[str, Any]"], None]  # (event kind, fields), run on the loop


class Checkpointer:
    """Copies the WAL back into the database file on its own thread and connection.

    Checkpoints are where SQLite syncs the database file, which in WAL mode with
    synchronous=NORMAL is the only fsync there is; done by the writer they would
    stall every commit queued behind them. A PASSIVE checkpoint never blocks the
    writer, so the writer turns its own automatic checkpoints off and pokes this
    thread every CHECKPOINT_EVERY commits instead."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.conn = conn
        self.path = path
        self.done = 0  # checkpoints completed
        self._wanted = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="ccdash-sqlite-checkpoint", daemon=True
        )

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def poke(self) -> None:
        """Ask for a checkpoint soon."""
        self._wanted.set()

    def stop(self) -> None:
        """End the thread after a last checkpoint (and close its connection)."""
        self._stopping = True
        self._wanted.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                try:
                    self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.done += 1
                except sqlite3.Error as exc:  # busy or I/O: the next poke tries again
                    log.warning("sqlite broker %s: checkpoint failed: %s", self.path, exc)
                if self._stopping:
                    return
        finally:
            self.conn.close()


class Writer:
    """The writer thread. `deliver(batch, counters, due, error)` and `notify(kind,
    fields)` (a batch waits out a passing failure, or got through after one) run on
    the loop."""

    def __init__(
        self,
        store: Store,
        path: str,
        loop: asyncio.AbstractEventLoop,
        deliver: Deliver,
        checkpointer: Checkpointer | None = None,
        notify: Notify | None = None,
    ) -> None:
        self.store = store
        self._notify = notify
        self._rng = random.Random()
        self.checkpointer = checkpointer
        # generation committed -> last op seq in it, until the loop has taken the results:
        # lets views on the loop tell which queued ops a read of the file already shows.
        self.marks: dict[int, int] = {}
        self._commits = 0
        self._since_checkpoint = 0
        self._checkpoints_seen = 0
        if checkpointer is not None:
            store.conn.execute("PRAGMA wal_autocheckpoint = 0")
        self.path = path
        self._loop = loop
        self._deliver = deliver
        self._ops: list[Op] = []
        self._cv = threading.Condition(threading.Lock())
        self._idle = False  # parked on the condition: a submit must notify
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="ccdash-sqlite-writer", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def submit(self, op: Op) -> None:
        """Queue an operation for the next batch."""
        with self._cv:
            self._ops.append(op)
            if self._idle:
                self._cv.notify()

    def stop(self) -> None:
        """Finish what is queued, then end the thread (and close its connection)."""
        with self._cv:
            self._stopping = True
            self._cv.notify()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end."""
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                with self._cv:
                    while not self._ops and not self._stopping:
                        self._idle = True
                        self._cv.wait()
                        self._idle = False
                    if not self._ops:
                        break
                    batch = self._ops[:MAX_BATCH]
                    del self._ops[:MAX_BATCH]
                if not self._commit(batch):
                    break
        finally:
            if self.checkpointer is not None:
                self.checkpointer.stop()
            self.store.conn.close()

    def _after_commit(self) -> None:
        cp = self.checkpointer
        if cp is None:
            return
        self._commits += 1
        if cp.done != self._checkpoints_seen:
            self._checkpoints_seen = cp.done
            self._since_checkpoint = 0
        self._since_checkpoint += 1
        if self._commits % CHECKPOINT_EVERY == 0:
            cp.poke()
        if self._since_checkpoint >= CHECKPOINT_FORCE:  # the checkpointer cannot keep up
            with contextlib.suppress(sqlite3.Error):
                self.store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self._since_checkpoint = 0

    def _commit(self, batch: list[Op]) -> bool:
        """Commit a batch and hand its results to the loop; False if the loop is gone.
        An error of one operation's own (its data, not the store) fails that
        operation alone: the batch is split and the halves committed apart, so one
        write that cannot succeed never takes the writes batched with it down."""
        counters, exc = self._transact_patiently(batch)
        if exc is not None and len(batch) > 1 and _own_error(exc):
            half = len(batch) // 2
            return self._commit(batch[:half]) and self._commit(batch[half:])
        error = None if exc is None else self._failed(batch, exc)
        try:
            self._loop.call_soon_threadsafe(self._deliver, batch, counters, self.store.due, error)
        except RuntimeError:  # the loop is gone: nobody is waiting any more
            return False
        if counters is not None:
            self._after_commit()
        return True

    def _tell(self, kind: str, **fields: Any) -> None:
        if self._notify is not None:
            with contextlib.suppress(RuntimeError):  # the loop is gone
                self._loop.call_soon_threadsafe(self._notify, kind, fields)

    def _transact_patiently(
        self, batch: list[Op]
    ) -> tuple[dict[str, int] | None, Exception | None]:
        """`_transact`, tried again after a backoff while it fails for a passing reason
        (each failure rolled the whole batch back: a retry runs every operation once,
        from scratch), for up to schema.LOCK_PATIENCE seconds. Warns on the loop once when it
        starts waiting, and once when the batch gets through."""
        counters, exc = self._transact(batch)
        if exc is None or not is_transient(exc):
            return counters, exc
        cause = str(exc)
        since = time.monotonic()
        log.warning("sqlite broker %s: write waits: %s; retrying with backoff", self.path, cause)
        patience = schema.LOCK_PATIENCE
        self._tell(STORE_BUSY, cause=cause, patience=patience)
        failures = 0
        while exc is not None and is_transient(exc):
            waited = time.monotonic() - since
            if waited >= patience:
                return None, sqlite3.OperationalError(f"{exc} (still, after {waited:.0f} s)")
            failures += 1
            delay = full_jitter(self._rng, RETRY_BASE, RETRY_CAP, failures)
            time.sleep(min(delay, patience - waited))
            counters, exc = self._transact(batch)
        if exc is None:
            waited = time.monotonic() - since
            log.warning("sqlite broker %s: writes go through again after %.1f s", self.path, waited)
            self._tell(STORE_RECOVERED, cause=cause, waited=round(waited, 3))
        return counters, exc

    def _transact(self, batch: list[Op]) -> tuple[dict[str, int] | None, Exception | None]:
        """Run a batch in one transaction; returns the committed counters, or the error
        (everything rolled back). The busy timeout waits inside BEGIN IMMEDIATE for
        another connection's lock; past it, the error is a passing one."""
        store = self.store
        conn = store.conn
        gen = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            store.begin()
            for op in batch:
                op.error = None  # a batch split after a failure runs its ops again
                try:
                    op.result = op.method(*op.args)
                except ReceiptRejected as exc:  # checked before any change: nothing to undo
                    op.error = exc
            counters = store.end()
            gen = counters["gen"]
            self.marks[gen] = batch[-1].seq  # before COMMIT: a reader seeing
            conn.execute("COMMIT")  # this generation finds its mark
        except Exception as exc:
            if gen is not None:  # not ours: another process may commit that generation
                self.marks.pop(gen, None)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            store.invalidate()
            return None, exc
        store.committed()
        return counters, None

    def _failed(self, batch: list[Op], exc: BaseException) -> BaseException:
        error = BrokerError(f"sqlite broker {self.path}: write failed: {exc}")
        log.error("%s", error)
        for op in batch:
            op.error = error
        return error
