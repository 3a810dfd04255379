"""Entries a read took whose reply was lost: adopted on the next round trips.

A read (XREADGROUP, natively, in the fetch script or parked with BLOCK) whose
connection broke may have run in Redis: what it took is pending for this live
worker, which never saw it, and would come back only when its lease ran out (an
attempt used up). After such a read the reader asks Redis, per stream it read,
for this worker's pending entries above the newest one it has seen there
(`XPENDING <stream> ccdash (<seen> + N <worker>`): a read with `>` takes entries
above every one handed out before, so these are the ones the lost read took (an
entry this worker saw, leased or with its ack on the way, is never among them).
Each is claimed back (`XCLAIM`, min-idle its idle time as XPENDING reported it,
the delivery count kept) and buffered like a fresh read of it: same attempt, a
full lease. Another worker takes an entry of ours only in a script that also
acks it (a reap), so an entry reaped meanwhile is no longer pending and XCLAIM
returns nothing for it. Only after a read with a lost reply; N is the fetch size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ccdash.brokers.redis.keys import GROUP
from ccdash.brokers.redis.local import Entry, Undecodable

if TYPE_CHECKING:
    from ccdash.brokers.redis.core import RedisCore
    from ccdash.brokers.redis.link import RedisLink

EntryId = tuple[int, int]


def entry_id(eid: bytes) -> EntryId:
    """A stream entry id as numbers, to compare ids."""
    ms, _, seq = eid.partition(b"-")
    return int(ms), int(seq or b"0")


class Seen:
    """The newest entry id this worker was handed, per stream (stream suffix)."""

    def __init__(self) -> None:
        self.newest: dict[bytes, tuple[EntryId, bytes]] = {}
        self.unknown: set[bytes] = set()  # streams a read with a lost reply may have taken from

    def saw(self, level: bytes, eid: bytes) -> None:
        """A read handed this worker `eid` of `level`."""
        n = entry_id(eid)
        old = self.newest.get(level)
        if old is None or n > old[0]:
            self.newest[level] = (n, eid)

    def start(self, level: bytes) -> bytes:
        """XPENDING's range start for `level`: just above the newest entry seen."""
        old = self.newest.get(level)
        return b"(" + old[1] if old is not None else b"-"


async def adopt(b: RedisCore, link: RedisLink, seen: Seen) -> int:
    """Buffer this worker's pending entries of the streams in `seen.unknown` that it
    was never handed; returns how many. LinkDown leaves them to the next call."""
    levels = sorted(seen.unknown)
    bound = b.fetch_size  # a read takes at most this many of a stream
    asks = [
        ("XPENDING", b.keys.level_stream(lv), GROUP, seen.start(lv), "+", bound, b.worker)
        for lv in levels
    ]
    known = b.book.known()
    claims: list[tuple[Any, ...]] = []
    where: list[tuple[bytes, int]] = []
    for level, reply in zip(levels, await link.execute(asks), strict=True):
        if isinstance(reply, Exception):
            continue  # no such stream (nothing taken), or no group: the reaper's business
        for eid, _owner, idle, count in reply:
            if (level, eid) in known:
                continue
            key = b.keys.level_stream(level)
            claims.append(("XCLAIM", key, GROUP, b.worker, idle, eid, "RETRYCOUNT", count))
            where.append((level, int(count)))
    got = 0
    if claims:
        deadline = b.clock.now() + b.vt
        replies = await link.execute(claims)
        for (level, count), reply in zip(where, replies, strict=True):
            if isinstance(reply, Exception):
                continue
            for eid, fields in reply:
                seen.saw(level, eid)
                if not fields or (level, eid) in known:
                    continue
                try:
                    entry = Entry(level, eid, fields, deadline)
                except Undecodable as exc:  # a foreign writer's entry: never a crash
                    b.bury_undecodable(level, eid, str(exc))
                    continue
                entry.count = count
                b.book.add(entry)
                got += 1
    seen.unknown.difference_update(levels)
    if got:
        b.note_fetched(got)
        b.fetched()
    return got
