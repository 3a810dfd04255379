"""Lease extensions on Redis, coalesced and sorted.

Every extension asked for while a round is on its way to Redis goes in the next
round, sorted by stream id and cut into script calls of EXTEND_CHUNK leases, all
queued at once (one pipeline). Sorted, a call's ids are neighbours in the worker's
pending list, so one range lookup checks them all. Unsorted, a consumer's leases
are scattered over everything the worker holds (the dispatcher deals messages out
in turn) and the script looks each one up on its own: at 100k leases held that
cost Redis more than twice as much, in the health tick that must extend them all
before they run out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import ResponseError

from ccdash.brokers.redis.link import evalsha, is_nogroup
from ccdash.brokers.redis.local import Entry, Held

EXTEND_CHUNK = 1000  # leases per extend script call (each call holds Redis for its run)

Call = Callable[[tuple[Any, ...]], "asyncio.Future[Any]"]


def id_order(entry: Entry) -> tuple[bytes, int, int]:
    """Where an entry sits in the pending lists: its stream, then its id's two parts."""
    ms, _, seq = entry.eid.partition(b"-")
    return entry.level, int(ms), int(seq or 0)


class _Request:
    """One `extend` call's leases, and the future of a flag per lease."""

    __slots__ = ("items", "idle_ms", "vt_ms", "done")

    def __init__(self, items: Sequence[Held], vt_ms: int, idle_ms: int) -> None:
        self.items = items
        self.vt_ms = vt_ms
        self.idle_ms = idle_ms
        self.done: asyncio.Future[bytearray] = asyncio.get_running_loop().create_future()


class Extender:
    """Coalesces lease extensions into sorted rounds (see the module docstring)."""

    def __init__(self, call: Call, prefix: str, worker: str) -> None:
        self.call = call  # queue a command for the write path; a future of its reply
        self.prefix = prefix
        self.worker = worker
        self.pending: list[_Request] = []
        self.rounds = 0  # rounds sent (for tests and the benchmarks)
        self._task: asyncio.Task[None] | None = None

    def extend(self, items: Sequence[Held], vt_ms: int, idle_ms: int) -> asyncio.Future[bytearray]:
        """Extend these leases (idle time reset to idle_ms if each is still ours, idle
        under vt_ms): a future of one flag per item, b"1" kept and b"0" gone."""
        req = _Request(items, vt_ms, idle_ms)
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
        """Send every lease of `batch` (grouped by their limits, sorted by id) in
        EXTEND_CHUNK script calls queued at once, and hand each request its flags."""
        self.rounds += 1
        groups: dict[tuple[int, int], list[_Request]] = {}
        for req in batch:
            groups.setdefault((req.vt_ms, req.idle_ms), []).append(req)
        sent: list[tuple[list[_Request], bytearray, list[list[int]], asyncio.Future[Any]]] = []
        for (vt_ms, idle_ms), reqs in groups.items():
            ents = [e for req in reqs for _, _, e in req.items]
            flags = bytearray(b"0" * len(ents))  # every lease of these requests, in order
            keys = list(map(id_order, ents))
            order = sorted(range(len(ents)), key=keys.__getitem__)
            for k in range(0, len(order), EXTEND_CHUNK):
                args, parts = _args(ents, order[k : k + EXTEND_CHUNK])
                fut = self.call(evalsha("extend", self.prefix, self.worker, vt_ms, idle_ms, *args))
                sent.append((reqs, flags, parts, fut))
        failed: dict[int, BaseException] = {}  # id(flags) of a group -> its error
        for _reqs, flags, parts, fut in sent:
            try:
                res = await fut
            except ResponseError as exc:
                if not is_nogroup(exc):  # NOGROUP: Redis lost the group, every lease is gone
                    failed.setdefault(id(flags), exc)
                continue
            except Exception as exc:  # told to the requests of this group
                failed.setdefault(id(flags), exc)
                continue
            for where, got in zip(parts, res, strict=True):
                for n, flag in zip(where, got, strict=False):
                    if flag == 49:  # b"1"
                        flags[n] = 49
        done: set[int] = set()
        for reqs, flags, _, _ in sent:
            if id(flags) in done:
                continue
            done.add(id(flags))
            error = failed.get(id(flags))
            at = 0
            for req in reqs:
                n = len(req.items)
                if not req.done.done():
                    if error is not None:
                        req.done.set_exception(error)
                    else:
                        req.done.set_result(flags[at : at + n])
                at += n


def _args(ents: list[Entry], idx: list[int]) -> tuple[list[bytes], list[list[int]]]:
    """The extend script's per-stream arguments (suffix, ids, counts) for ents[i], i in
    idx, and the positions (in ents) of its reply's flags, stream by stream."""
    by_level: dict[bytes, list[int]] = {}
    for i in idx:
        level = ents[i].level
        where = by_level.get(level)
        if where is None:
            where = by_level[level] = []
        where.append(i)
    args: list[bytes] = []
    for level, where in by_level.items():
        chosen = [ents[i] for i in where]
        args += (
            level,
            b" ".join([e.eid for e in chosen]),
            b" ".join([b"%d" % e.count for e in chosen]),
        )
    return args, list(by_level.values())
