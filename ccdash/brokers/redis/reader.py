"""The Redis broker's read path: one task keeps this worker's buffer filled.

It reads only while there is demand (a consumer parked in `wait_ready`, or the
buffer below half its batch while consumers take from it). The fetch script
moves due retries back and readies returned messages; the entries themselves
come from a native XREADGROUP of the highest levels that may have some (the
script reads top down itself only when those ran short). When nothing is ready,
the task parks in Redis on XREADGROUP BLOCK (bounded by the next due retry, and by
a quarter of the visibility timeout: what a read takes is leased from when it was
sent), so an idle fleet sends no polls. Once a read took all that was ready, the
next one parks in Redis at once (no fetch first) and only when a consumer waits:
a message published to an idle worker reaches its handler with no other round
trip before it. A fetch still runs when a retry comes due, after a local nack or
defer, when a message came back, and at least every BLOCK_MS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from ccdash.backoff import Backoff
from ccdash.brokers.base import BrokerError
from ccdash.brokers.redis.adopting import Seen, adopt
from ccdash.brokers.redis.closing import while_answering
from ccdash.brokers.redis.keys import GROUP
from ccdash.brokers.redis.link import (
    LinkDown,
    LinkDownAfterReplies,
    RedisLink,
    evalsha,
    is_nogroup,
)
from ccdash.brokers.redis.local import Entry, Undecodable

if TYPE_CHECKING:
    from ccdash.brokers.redis.core import RedisCore

log = logging.getLogger("ccdash.redis")

# A stream's entries as a read returned them, and their lease deadline.
Taken = tuple[bytes, list[Any], float]
Later = dict[bytes, tuple[list[Any], float]]  # the same by stream, not yet buffered

BLOCK_MS = 2000  # longest park in XREADGROUP BLOCK (also notices new priority levels)


class Reader:
    """Fills the local buffer on demand."""

    def __init__(self, broker: RedisCore, link: RedisLink) -> None:
        self.b = broker
        self.link = link
        self.prios: list[bytes] = []
        self.next_due = -1  # Redis ms of the earliest delayed retry, -1: none
        self.floor: int | None = None  # fast path: read natively from levels >= floor
        self.redis_now = 0
        self.fetched_at = 0.0  # local monotonic time of the last fetch (its redis_now)
        # The last read took all that was ready (fewer entries than asked for) and saw
        # no wake entry: the next read may park in Redis at once, no fetch first.
        self.drained = False
        self.backoff = Backoff()
        self.seen = Seen()  # the newest entries read; streams a lost read may have taken from
        self.rng = random.Random()
        self._want = asyncio.Event()
        self.idle = asyncio.Event()  # set while no fetch is wanted or running
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._blocking = False

    def start(self) -> None:
        """Start the task."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="ccdash-redis-reader")

    async def stop(self, since: float | None = None) -> None:
        """Stop the task and close its connection. A parked BLOCK read is ended with
        CLIENT UNBLOCK (not by cancelling it mid-read): what it took is buffered, and
        handed back with the rest of the buffer. `since`: when the close began (an
        unanswered UNBLOCK is given up CLOSE_PATIENCE after that, see closing.py)."""
        self._stopping = True
        self._want.set()
        task = self._task
        if task is not None and not task.done():
            if self._blocking and self.link.client_id is not None:
                unblock = self.b.flusher.call(("CLIENT", "UNBLOCK", self.link.client_id))
                with contextlib.suppress(LinkDown, ResponseError):
                    if await while_answering(self.b.flusher, unblock, cap=2.0, since=since):
                        # Its reply is on the way: let the read end (bounded) and buffer it.
                        await asyncio.wait([task], timeout=BLOCK_MS / 1000 + 1.0)
            # Cancelled mid-round-trip, the read drops its connection; entries it took
            # stay pending for this worker, and retiring hands them back.
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.link.close()

    def want(self) -> None:
        """There is demand: read."""
        self._want.set()
        self.idle.clear()

    def _satisfied(self) -> bool:
        b = self.b
        if b.book.buffered >= b.fetch_size:
            return True
        return not b.has_waiters() and b.book.buffered * 2 >= b.fetch_size

    async def run(self) -> None:
        """Fetch while there is demand; park in Redis when nothing is ready."""
        b = self.b
        while not self._stopping:
            if not self._want.is_set():
                self.idle.set()
            await self._want.wait()
            if self._stopping:
                return
            if self._satisfied():
                self._want.clear()
                continue
            try:
                if not b.presence.registered:
                    await b.presence.register()
                if self.seen.unknown and await adopt(b, self.link, self.seen):
                    continue  # what a read with a lost reply took: buffered before any newer
                if self.drained and self._fetch_not_needed():
                    # Nothing more was ready at the last read: a consumer that waits
                    # gets what comes next from a read parked in Redis; while none
                    # waits, the consumers start on what was read before any new
                    # round trip goes out (it would delay them on a busy machine).
                    if b.has_waiters():
                        await self.block()
                    else:
                        self._want.clear()
                    continue
                if await self.fetch():
                    self.backoff.reset()
                    continue
                if not b.has_waiters():
                    self._want.clear()
                    continue
                await self.block()
                self.backoff.reset()
            except LinkDown:
                await asyncio.sleep(self.backoff.next_delay())
            except ResponseError as exc:
                if is_nogroup(exc):
                    b.on_lost_state()
                else:
                    log.error("reading from Redis failed: %s", self.link.describe(exc))
                await asyncio.sleep(self.backoff.next_delay())
            except BrokerError as exc:  # e.g. our worker name is taken: tell the waiters
                log.error("%s", exc)
                b.fail_waiters(exc)
                self._want.clear()
            except Exception:  # a bug must not silently end the reader
                log.exception("Redis reader failed; retrying")
                await asyncio.sleep(self.backoff.next_delay())

    def changed(self) -> None:
        """This worker changed what only a fetch reads (a retry scheduled, a message
        given back, a priority level that may be new): the next read fetches."""
        self.drained = False

    def _fetch_not_needed(self) -> bool:
        """After a read that took all that was ready: one priority level (a BLOCK read
        takes up to COUNT of every level, so with several it could take lower ones
        ahead of higher ones still unread), no retry due, and the last fetch recent (it
        notices new levels): a read parked in Redis serves as well as a fetch, with
        one round trip and script less."""
        if len(self.prios) > 1 or (time.monotonic() - self.fetched_at) * 1000 >= BLOCK_MS:
            return False
        return self.next_due < 0 or self._redis_ms() < self.next_due

    def _levels(self) -> list[bytes]:
        """Every stream suffix a read of all known priority levels takes from."""
        return [lv for p in self.prios for lv in (b"r" + p, p)]

    def _redis_ms(self) -> float:
        """Redis time now, estimated from the last fetch's reading of it."""
        return self.redis_now + (time.monotonic() - self.fetched_at) * 1000

    async def fetch(self, taken: Sequence[Taken] = ()) -> int:
        """One fetch round trip; returns how many entries were buffered. `taken`: what
        a BLOCK read just took of each level, buffered after the messages that came
        back to that level (they were read before it) and before newer entries.

        The fast path (`floor` known) sends the fetch script in prep mode (due
        retries back, returned messages of the levels >= floor moved to their
        returned streams; per call, not per entry) and, in the same pipeline, one
        native XREADGROUP of those levels' streams: entries never pass through Lua.
        `floor` is the highest level that may still hold unread entries, so nothing
        of a lower level is read while a higher one has some. When those levels run
        short, or the floor is not known, the script reads itself, top down to n.
        """
        b = self.b
        n = max(1, b.fetch_size - b.book.buffered - sum(len(e) for _, e, _ in taken))
        t0 = b.clock.now()
        self.fetched_at = time.monotonic()
        self.drained = False
        later = {level: (entries, d) for level, entries, d in taken}
        got = 0
        try:
            if self.floor is not None:
                got = await self._fetch_native(n, self.floor, t0, later)
            else:
                got = await self._fetch_scripted(n, t0, later)
        finally:  # what a BLOCK read took is ours, whatever became of the fetch
            for level, (entries, d) in later.items():
                got += self._buffer(level, entries, d)
            if got:
                b.note_fetched(got)
                b.fetched()
        return got

    async def _fetch_scripted(self, n: int, t0: float, later: Later) -> int:
        b = self.b
        # Its own connection: reads overlap the write path's round trips (no bubble
        # while acks are in flight), and fetching never changes what is outstanding.
        try:
            [reply] = await self.link.execute([evalsha("fetch", b.keys.prefix, b.worker, n, 200)])
        except LinkDown:  # its read may have run: adopted on the next round trip
            self.seen.unknown.update(self._levels())
            raise
        if isinstance(reply, Exception):
            raise reply
        self.redis_now, self.next_due, self.prios, *rest = reply
        got = read = 0
        deadline = t0 + b.vt
        for i in range(0, len(rest), 2):
            read += len(rest[i + 1])
            got += self._buffer_after(rest[i], rest[i + 1], deadline, later)
        self.drained = read < n
        # Filled: the lowest level read may have more (every level above ran dry).
        self.floor = int(rest[-2].lstrip(b"r")) if rest and read >= n else None
        return got

    async def _fetch_native(self, n: int, floor: int, t0: float, later: Later) -> int:
        b = self.b
        prefix = b.keys.prefix.encode()
        keys: list[bytes] = []
        for p in self.prios:
            if int(p) >= floor:
                keys += (prefix + b"q:r" + p, prefix + b"q:" + p)
        read_cmd = (
            "XREADGROUP",
            "GROUP",
            GROUP,
            b.worker,
            "COUNT",
            n,
            "STREAMS",
            *keys,
            *([">"] * len(keys)),
        )
        prep: Any
        try:
            prep, reply = await self.link.execute(
                [evalsha("fetch", b.keys.prefix, b.worker, n, 200, floor), read_cmd]
            )
        except LinkDownAfterReplies as exc:  # the read ran: what it took is ours
            prep, reply = exc, exc.replies[1]
        except LinkDown:  # the read may have run: adopted on the next round trip
            self.seen.unknown.update(k[len(prefix) + 2 :] for k in keys)
            raise
        self.floor = None  # short everywhere: the scripted read looks at every level next
        if isinstance(reply, Exception):
            raise reply
        got = 0
        deadline = t0 + b.vt
        for key, entries in reply or ():  # buffered even if the prep failed: they are ours
            level = key.rsplit(b":", 1)[1]
            if len(entries) >= n and self.floor is None:
                self.floor = int(level.lstrip(b"r"))  # the highest level with more to read
            got += self._buffer_after(level, entries, deadline, later)
        if isinstance(prep, Exception):
            self.floor = None
            if got:
                b.note_fetched(got)
                b.fetched()
            raise prep
        self.redis_now, self.next_due, self.prios = prep
        return got

    def _buffer_after(self, level: bytes, entries: list[Any], deadline: float, later: Later) -> int:
        """`_buffer` a level's entries from a fetch; a level's new entries go after what
        a BLOCK read took of it (`later`), returned ones before."""
        got = 0
        if level in later:
            got += self._buffer(level, *later.pop(level))
        return got + self._buffer(level, entries, deadline)

    def _buffer(self, level: bytes, entries: list[Any], deadline: float) -> int:
        add = self.b.book.add
        saw = self.seen.saw
        n = 0
        for eid, fields in entries:
            saw(level, eid)
            if fields:
                try:
                    entry = Entry(level, eid, fields, deadline)
                except Undecodable as exc:  # a foreign writer's entry: never a crash
                    self.b.bury_undecodable(level, eid, str(exc))
                    continue
                add(entry)
                n += 1
        return n

    async def block(self) -> None:
        """Park on XREADGROUP BLOCK for new entries, or a wake entry saying a message
        came back (bounded by the next retry due). Returned messages are read by the
        next fetch, which keeps their order."""
        b = self.b
        # Its leases count from when it is sent (Redis may serve it at once): parked at
        # most a quarter of a lease, what it takes has three quarters of one left.
        timeout_ms = max(1, min(BLOCK_MS, int(b.vt * 250)))
        if self.next_due >= 0:
            until_due = int(self.next_due - self._redis_ms())
            timeout_ms = max(1, min(timeout_ms, until_due + self.rng.randint(0, 20)))
        if not self.prios:  # level 0 is made at open; this is a Redis that lost it
            await asyncio.sleep(timeout_ms / 1000.0)
            return
        wake = b.keys.wake.encode()
        keys = [b.keys.prefix.encode() + b"q:" + p for p in self.prios] + [wake]
        n = max(1, b.fetch_size - b.book.buffered)
        cmd = (
            "XREADGROUP",
            "GROUP",
            GROUP,
            b.worker,
            "COUNT",
            n,
            "BLOCK",
            timeout_ms,
            "STREAMS",
            *keys,
            *([">"] * len(keys)),
        )
        # The socket timeout (above BLOCK_MS) bounds the read: an explicit read timeout
        # would leave a late reply on the connection.
        self._blocking = True
        t0 = b.clock.now()
        try:
            [reply] = await self.link.execute([cmd])
        except LinkDown:  # the read may have run: adopted on the next round trip
            self.seen.unknown.update(self.prios)
            raise
        finally:
            self._blocking = False
        if isinstance(reply, Exception):
            raise reply
        if not reply:
            return
        # Redis's lease clock started when it served the read, which may be long before
        # its reply is read here (the process stopped meanwhile): count from the send.
        deadline = t0 + b.vt
        taken: list[Taken] = []
        woken: list[bytes] = []
        self.drained = True
        for key, entries in reply:
            if key == wake:
                woken = [eid for eid, _ in entries]
                continue
            if len(entries) >= n:  # maybe more
                self.drained = False
            taken.append((key.rsplit(b":", 1)[1], entries, deadline))
        if woken:  # a message came back: read it (a fetch) before these
            try:
                await self.link.execute([("XACK", wake, GROUP, *woken), ("XDEL", wake, *woken)])
            except BaseException:
                # What the read took is pending for this worker in Redis: buffered
                # whatever became of the wake's ack (dropped, it waited for its lease
                # to run out, an attempt used up).
                self._buffer_taken(taken)
                raise
            await self.fetch(taken)
            return
        self._buffer_taken(taken)

    def _buffer_taken(self, taken: Sequence[Taken]) -> None:
        got = 0
        for level, entries, d in taken:
            got += self._buffer(level, entries, d)
        if got:
            self.b.note_fetched(got)
            self.b.fetched()
