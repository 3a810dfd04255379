"""The event loop's side of the SQLite writer thread.

`Link` queues operations for the writer, takes each committed batch's results
back on the loop (resolving the awaiting futures), and keeps the counters as of
the newest batch it has taken, which is what the per-message hot paths read.
It also knows which of its queued operations a fresh read of the file already
shows, so views that read the file stay consistent while a batch is between
its commit and its hand-back.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Callable
from typing import Any

from ccdash.brokers.base import BrokerError
from ccdash.brokers.sqlite import views
from ccdash.brokers.sqlite.frame import next_deadline
from ccdash.brokers.sqlite.store import Store
from ccdash.brokers.sqlite.writer import Op, Writer
from ccdash.waiters import Waiters


class Link:
    """Queue operations, take results, keep the counters."""

    def __init__(
        self,
        writer: Writer,
        store: Store,
        loop: asyncio.AbstractEventLoop,
        counters: dict[str, int],
        due: float,
        on_change: Callable[[], None],
    ) -> None:
        self.writer = writer
        self.store = store
        self.loop = loop
        self.counters = counters  # as of the newest batch taken back (or file read)
        self.gen = counters["gen"]
        self.due = due  # no retry/lease deadline (wall) before this
        self.on_change = on_change  # after every batch: wake whoever waits
        self.submitted = 0
        self.delivered = 0  # op seq of the newest batch taken back
        self.staged: deque[int] = deque()  # op seqs of publish_nowait ops not taken back
        self.staged_dedup: dict[str, tuple[str, float]] = {}
        self.kick_op: Op | None = None
        self.broken: BaseException | None = None
        self._drainers = Waiters()

    def _submit(self, op: Op) -> None:
        self.submitted += 1
        op.seq = self.submitted
        self.writer.submit(op)

    def call(self, method: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue `method(*args)`; the future resolves once its batch is committed."""
        fut = self.loop.create_future()
        self._submit(Op(method, args, fut))
        return fut

    def stage(self, args: tuple[Any, ...], dedup_id: str | None, mid: str, expires: float) -> None:
        """Queue a publish nobody awaits (publish_nowait)."""
        op = Op(self.store.publish, args, None, True)
        self._submit(op)
        self.staged.append(op.seq)
        if dedup_id is not None:
            self.staged_dedup[dedup_id] = (mid, expires)

    def kick(self, now: float) -> None:
        """Queue a reap (a deadline passed), unless one is queued already."""
        if self.kick_op is None:
            self.kick_op = Op(self.store.noop, (now,), None)
            self._submit(self.kick_op)

    def pending(self) -> bool:
        """Whether operations are queued or being committed."""
        return self.submitted != self.delivered

    async def drained(self) -> None:
        """Return once every operation queued so far is back."""
        if self.pending():
            await self._drainers.park()

    async def stored(self) -> None:
        """`drained`, then BrokerError if publishes accepted without waiting (publish_nowait,
        publish_many) could not be stored: never returned as if they were."""
        await self.drained()
        if self.broken is not None:
            raise BrokerError(str(self.broken))

    def deliver(
        self,
        batch: list[Op],
        counters: dict[str, int] | None,
        due: float,
        error: BaseException | None,
    ) -> None:
        """On the loop: a batch was committed (or failed). Update, resolve, wake."""
        self.delivered = batch[-1].seq
        staged = self.staged
        lost = 0
        while staged and staged[0] <= self.delivered:
            staged.popleft()
            lost += 1
        if self.staged_dedup:
            for op in batch:
                key = op.args[5] if op.staged else None
                if key is not None and self.staged_dedup.get(key, ("",))[0] == op.args[1]:
                    del self.staged_dedup[key]
        if error is not None and lost:
            self.broken = BrokerError(f"{error}; {lost} accepted publishes were not stored")
        marks = self.writer.marks
        if counters is not None:
            for gen in [g for g in marks.copy() if g <= counters["gen"]]:
                marks.pop(gen, None)
            if counters["gen"] >= self.gen:  # equal: nothing changed, but `due` may have
                self.counters, self.gen, self.due = counters, counters["gen"], due
        elif error is not None:
            self.due = -float("inf")  # unknown: look at the file
        for op in batch:
            if op is self.kick_op:
                self.kick_op = None
            fut = op.fut
            if fut is None or fut.done():
                continue
            if op.error is not None:
                fut.set_exception(op.error)
            else:
                fut.set_result(op.result)
        if self._drainers and not self.pending():
            self._drainers.wake_all()
        self.on_change()

    def refresh(self, conn: sqlite3.Connection) -> None:
        """Take the counters from the file when nothing of ours is in flight (then any
        difference is another process's doing)."""
        if self.pending():
            return
        c = views.counters(conn)
        if c["gen"] > self.gen:
            self.counters, self.gen = c, c["gen"]
            self.due = next_deadline(conn)

    def read_file(
        self, conn: sqlite3.Connection, now_w: float, max_attempts: int
    ) -> tuple[dict[str, int], tuple[int, int, int], int]:
        """One consistent read: the counters, what is overdue, and how many staged
        publishes that read does not show yet."""
        conn.execute("BEGIN")
        try:
            c = views.counters(conn)
            overdue = views.overdue(conn, now_w, max_attempts)
        finally:
            conn.execute("COMMIT")
        shown = self.delivered
        for gen, seq in self.writer.marks.copy().items():
            if gen <= c["gen"] and seq > shown:
                shown = seq
        unseen = 0
        for seq in reversed(self.staged):
            if seq <= shown:
                break
            unseen += 1
        return c, overdue, unseen
