"""Where a batch of message ids is now on a Redis queue: still outstanding (a
stream entry not yet read or still pending, a returned message waiting for a
fetch, a delayed retry), dead, or gone (acked: an acked entry may stay in its
stream until it is trimmed, read and no longer pending). It reads the key layout
the broker's scripts write (`scripts`), so it lives beside them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ccdash.brokers.redis.keys import GROUP, Keys

CHUNK = 1000  # stream entries read per round trip


@dataclass(frozen=True, slots=True)
class Whereabouts:
    """The asked-about ids still outstanding or dead, and the fleet's acked total."""

    outstanding: frozenset[str]
    dead: frozenset[str]
    acked_total: int


async def locate_ids(client: Any, keys: Keys, ids: Iterable[str]) -> Whereabouts:
    """Which of `ids` the queue with these keys still holds (one scan of its streams)."""
    wanted = set(ids)
    found: set[str] = set()
    for raw in await client.zrange(keys.priorities, 0, -1):
        level = raw.decode()
        # A level's new and returned entries (leased ones stay in them until acked).
        for stream in (keys.level_stream(level), keys.level_stream("r" + level)):
            found |= await _scan(client, stream, wanted)
        # Returned messages waiting for a fetch: members `order|id`.
        for member in await client.zrange(keys.returned(int(level)), 0, -1):
            if (mid := member.decode().rpartition("|")[2]) in wanted:
                found.add(mid)
    for member in await client.zrange(keys.delayed, 0, -1):
        if member.decode() in wanted:
            found.add(member.decode())
    dead: set[str] = set()
    order = sorted(wanted)
    for i in range(0, len(order), CHUNK):
        part = order[i : i + CHUNK]
        for mid, entry in zip(part, await client.hmget(keys.dead_index, part), strict=True):
            if entry is not None:
                dead.add(mid)
    acked = int(await client.hget(keys.counters, "acked") or 0)
    return Whereabouts(frozenset(found), frozenset(dead), acked)


async def _scan(client: Any, stream: str, wanted: set[str]) -> set[str]:
    """The wanted ids that have an entry in `stream` not yet acked: unread (after the
    group's last-delivered id) or pending."""
    found: set[str] = set()
    last = (-1, -1)
    groups = await client.xinfo_groups(stream) if await client.exists(stream) else []
    for group in groups:
        if _text(group.get("name")) == GROUP:
            last = _id(group.get("last-delivered-id"))
    start = "-"
    while True:
        entries = await client.xrange(stream, min=start, count=CHUNK)
        pending: set[bytes] | None = None
        for eid, fields in entries:
            mid = fields.get(b"m", b"").decode(errors="backslashreplace")
            if mid not in wanted:
                continue
            if _id(eid) <= last:  # read: outstanding only while still pending
                if pending is None:
                    rows = await client.xpending_range(
                        stream, GROUP, min=entries[0][0], max=entries[-1][0], count=CHUNK
                    )
                    pending = {_raw(r["message_id"]) for r in rows}
                if _raw(eid) not in pending:
                    continue
            found.add(mid)
        if len(entries) < CHUNK:
            return found
        start = "(" + entries[-1][0].decode()


def _raw(v: Any) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode()


def _text(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def _id(v: Any) -> tuple[int, int]:
    """A stream id as a comparable pair ((-1, -1) if it is not one)."""
    ms, _, seq = _text(v).partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return (-1, -1)
