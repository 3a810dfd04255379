"""Turning Redis replies into the broker's view objects (the stats read's `Snapshot`,
dead letters)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ccdash.brokers.base import DeadLetter, HistoryEntry
from ccdash.brokers.redis.local import decode_stored


def _fields(raw: list[bytes] | dict[bytes, bytes]) -> dict[str, bytes]:
    """An entry's fields: a flat [k, v, ...] list (a raw reply) or a dict (redis-py's
    parsed XRANGE reply); undecodable names are kept escaped, a dangling name dropped."""
    pairs = raw.items() if isinstance(raw, dict) else zip(*[iter(raw)] * 2, strict=False)
    return {k.decode(errors="backslashreplace"): v for k, v in pairs}


def _text(v: bytes | None) -> str:
    return (v or b"").decode(errors="backslashreplace")


def _num(v: bytes | None, kind: type[int] | type[float] = int) -> Any:
    """A numeric field; 0 when it is missing or not a number (a foreign writer)."""
    try:
        return kind(v or b"0")
    except (ValueError, OverflowError):
        return kind(0)


def parse_history(raw: bytes | None, offset: float) -> tuple[HistoryEntry, ...]:
    """A stored failure history (JSON [[at ms, consumer, attempt, outcome, error]...])."""
    if not raw:
        return ()
    try:
        items = json.loads(raw)
        return tuple(
            HistoryEntry(float(at) / 1000.0 + offset, str(c), int(n), str(o), str(e))
            for at, c, n, o, e in items
        )
    except (ValueError, TypeError, RecursionError):  # not the history the scripts write
        return ()


def parse_dead_letters(raw: list[Any], offset: float) -> list[DeadLetter]:
    """XREVRANGE of the dead stream -> DeadLetters (newest first), from a raw reply
    (flat field lists) or redis-py's parsed one (dicts). `offset` turns Redis
    wall-clock seconds into local monotonic time. A field that does not parse
    shows as empty or 0: one odd entry never hides the others."""
    out = []
    for _eid, fields in raw or ():
        f = _fields(fields)
        try:
            body: Any = decode_stored(f.get("d", b"b"))
        except (ValueError, RecursionError):  # not JSON we wrote: show the bytes
            body = f.get("d", b"")
        out.append(
            DeadLetter(
                message_id=_text(f.get("m")),
                reason=_text(f.get("r")),
                attempts=_num(f.get("n")),
                last_error=_text(f.get("e")),
                priority=_num(f.get("p")),
                body=body,
                dead_at=_num(f.get("at"), float) / 1000.0 + offset,
                history=parse_history(f.get("h"), offset),
            )
        )
    return out


@dataclass(slots=True)
class Snapshot:
    """The queue as of one stats read (fleet-wide)."""

    ready: int = 0
    delayed: int = 0
    in_flight: int = 0
    dead: int = 0
    published: int = 0
    acked: int = 0
    dead_lettered: int = 0
    redelivered: int = 0
    dlq_version: int = 0
    per_worker: dict[str, int] | None = None
    redis_now: float = 0.0  # Redis wall clock, seconds
    oldest_ready: float | None = None  # Redis wall clock, seconds: the oldest ready's publish
    taken_at: float = 0.0  # local monotonic time of the read


def _count(raw: bytes) -> int:
    try:
        return int(raw)
    except ValueError:
        return 0


def parse_stats(r: list[Any], now: float) -> Snapshot:
    """The stats script's reply as a Snapshot."""
    ready, delayed, pend, dead, counters, per, redis_now, oldest = r
    # Consumer names come from any client of the group: never let one fail the read.
    # A counter a foreign writer left that is no integer reads as 0 (the next count
    # of the scripts starts it afresh), never failing the read.
    c = {
        counters[j].decode(errors="backslashreplace"): _count(counters[j + 1])
        for j in range(0, len(counters), 2)
    }
    per_worker = {
        per[j].decode(errors="backslashreplace"): int(per[j + 1]) for j in range(0, len(per), 2)
    }
    return Snapshot(
        ready=max(0, int(ready)),
        delayed=int(delayed),
        in_flight=int(pend),
        dead=int(dead),
        published=c.get("published", 0),
        acked=c.get("acked", 0),
        dead_lettered=c.get("dead_lettered", 0),
        redelivered=c.get("redelivered", 0),
        dlq_version=c.get("dlq_version", 0),
        per_worker=per_worker,
        redis_now=int(redis_now) / 1000.0,
        taken_at=now,
        oldest_ready=int(oldest) / 1000.0 if int(oldest) >= 0 else None,
    )
