"""Turning Redis replies into the broker's view objects."""

from __future__ import annotations

import json
from typing import Any

from ccdash.brokers.base import DeadLetter, HistoryEntry
from ccdash.brokers.redis.local import decode_stored


def _fields(raw: list[bytes]) -> dict[str, bytes]:
    it = iter(raw)
    return {k.decode(): v for k, v in zip(it, it, strict=True)}


def parse_history(raw: bytes | None, offset: float) -> tuple[HistoryEntry, ...]:
    """A stored failure history (JSON [[at ms, consumer, attempt, outcome, error]...])."""
    if not raw:
        return ()
    try:
        items = json.loads(raw)
    except ValueError:
        return ()
    if not isinstance(items, list):
        return ()
    return tuple(HistoryEntry(float(at) / 1000.0 + offset, str(c), int(n), str(o), str(e))
                 for at, c, n, o, e in items)


def parse_dead_letters(raw: list[Any], offset: float) -> list[DeadLetter]:
    """XREVRANGE of the dead stream -> DeadLetters (newest first). `offset` turns
    Redis wall-clock seconds into local monotonic time."""
    out = []
    for _eid, fields in raw or ():
        f = _fields(fields)
        try:
            body: Any = decode_stored(f.get("d", b"b"))
        except ValueError:
            body = f.get("d", b"")
        out.append(DeadLetter(
            message_id=f.get("m", b"").decode(),
            reason=f.get("r", b"").decode(),
            attempts=int(f.get("n", b"0")),
            last_error=f.get("e", b"").decode(errors="replace"),
            priority=int(f.get("p", b"0")),
            body=body,
            dead_at=int(f.get("at", b"0")) / 1000.0 + offset,
            history=parse_history(f.get("h"), offset),
        ))
    return out
