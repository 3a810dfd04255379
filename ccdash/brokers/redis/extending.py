"""Lease extensions on Redis, coalesced into rounds of plain XCLAIMs.

A lease is its entry's idle time in the worker's pending list; XCLAIM of our own
entry with IDLE and JUSTID sets it (the delivery count stays). Every extension
asked for while a round is on its way to Redis goes in the next round: per stream,
XCLAIMs of EXTEND_CHUNK ids, all queued at once (one pipeline).

Redis only confirms that each entry is still pending (XCLAIM returns the ids it
found), as it does for an ack: the lease clock is checked where the receipt is,
against the worker's own deadline (see LeaseOps.extend_many), and a message that
comes back (expired, nacked, its worker dead) is always a new entry, its old one
acked and deleted in the same script, so a stale lease's XCLAIM finds nothing.
There is no per-lease check in Lua: XCLAIM costs Redis about 3 µs a lease, where
the script that looked each one up cost 4.5-6 µs when the leases of a call were
neighbours in the pending list, and several times that when they were scattered
over it (a pool's consumers hold every n-th entry; the health tick extends some
consumers' leases ahead of time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import ResponseError

from ccdash.brokers.redis.keys import GROUP, Keys
from ccdash.brokers.redis.link import Raw, is_nogroup
from ccdash.brokers.redis.local import Held

EXTEND_CHUNK = 1000  # ids per XCLAIM (each call holds Redis for its run)

Call = Callable[[tuple[Any, ...]], "asyncio.Future[Any]"]


class _Request:
    """One `extend` call's leases, and the future of a flag per lease."""

    __slots__ = ("items", "idle_ms", "done")

    def __init__(self, items: Sequence[Held], idle_ms: int) -> None:
        self.items = items
        self.idle_ms = idle_ms
        self.done: asyncio.Future[bytearray] = asyncio.get_running_loop().create_future()


class Extender:
    """Coalesces lease extensions into rounds (see the module docstring)."""

    def __init__(self, call: Call, keys: Keys, worker: str) -> None:
        self.call = call  # queue a command for the write path; a future of its reply
        self.keys = keys
        self.worker = worker
        self.pending: list[_Request] = []
        self.rounds = 0  # rounds sent (for tests and the benchmarks)
        self._task: asyncio.Task[None] | None = None

    def extend(self, items: Sequence[Held], idle_ms: int) -> asyncio.Future[bytearray]:
        """Extend these leases (idle time set to idle_ms if each is still pending): a
        future of one flag per item, b"1" kept and b"0" gone."""
        req = _Request(items, idle_ms)
        if not items:
            req.done.set_result(bytearray())
            return req.done
        self.pending.append(req)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="ccdash-redis-extend"
            )
        return req.done

    async def stop(self) -> None:
        """Closing: end a round still waiting (its requests get the error)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        batch: list[_Request] = []
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                await self._round(batch)
        except BaseException as exc:  # cancelled (closing) or a bug: nobody waits for ever
            for req in (*batch, *self.pending):
                if not req.done.done():
                    req.done.set_exception(exc)
            self.pending = []
            raise

    async def _round(self, batch: list[_Request]) -> None:
        """Send every lease of `batch` (grouped by idle time and stream) in XCLAIMs of
        EXTEND_CHUNK ids queued at once, and hand each request its flags."""
        self.rounds += 1
        groups: dict[int, list[_Request]] = {}
        for req in batch:
            groups.setdefault(req.idle_ms, []).append(req)
        sent: list[tuple[list[_Request], int, list[tuple[bytes, asyncio.Future[Any]]]]] = []
        for idle_ms, reqs in groups.items():
            by_level: dict[bytes, list[bytes]] = {}
            for req in reqs:
                for _, _, e in req.items:
                    ids = by_level.get(e.level)
                    if ids is None:
                        ids = by_level[e.level] = []
                    ids.append(e.eid)
            calls = []
            tail = ("IDLE", idle_ms, "JUSTID")
            for level, ids in by_level.items():
                head = ("XCLAIM", self.keys.level_stream(level), GROUP, self.worker, 0)
                for k in range(0, len(ids), EXTEND_CHUNK):
                    chunk = ids[k : k + EXTEND_CHUNK]
                    # The ids RESP-encoded at once: packing them one by one cost more.
                    raw = Raw(b"".join([b"$%d\r\n%s\r\n" % (len(i), i) for i in chunk]), len(chunk))
                    calls.append((level, self.call((*head, raw, *tail))))
            sent.append((reqs, sum(map(len, by_level.values())), calls))
        for reqs, n, calls in sent:
            kept: dict[bytes, set[bytes]] = {}  # per stream suffix, the ids still pending
            error: BaseException | None = None
            for level, fut in calls:
                try:
                    got = await fut
                except ResponseError as exc:
                    if not is_nogroup(exc) and error is None:  # NOGROUP: every lease is gone
                        error = exc
                    continue
                except Exception as exc:  # told to the requests of this group
                    if error is None:
                        error = exc
                    continue
                kept.setdefault(level, set()).update(got)
            every = error is None and sum(map(len, kept.values())) == n  # the usual case
            for req in reqs:
                if req.done.done():
                    continue
                if error is not None:
                    req.done.set_exception(error)
                elif every:
                    req.done.set_result(bytearray(b"1" * len(req.items)))
                else:
                    req.done.set_result(_flags(req.items, kept))


def _flags(items: Sequence[Held], kept: dict[bytes, set[bytes]]) -> bytearray:
    """b"1" for each item whose entry is in `kept`, else b"0"."""
    none: set[bytes] = set()
    return bytearray(49 if e.eid in kept.get(e.level, none) else 48 for _, _, e in items)
