"""Where a batch of message ids is now on a Redis queue: still outstanding (a
stream entry, a returned message waiting for a fetch, a delayed retry), dead, or
gone (acked: XACK + XDEL). It reads the key layout the broker's scripts write
(`scripts`), so it lives beside them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ccdash.brokers.redis.keys import Keys

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
    """The wanted ids that have an entry in `stream`."""
    found: set[str] = set()
    start = "-"
    while True:
        entries = await client.xrange(stream, min=start, count=CHUNK)
        for _eid, fields in entries:
            if (mid := fields.get(b"m", b"").decode(errors="backslashreplace")) in wanted:
                found.add(mid)
        if len(entries) < CHUNK:
            return found
        start = "(" + entries[-1][0].decode()
