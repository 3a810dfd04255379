"""Handlers the chaos suite runs inside real processes (`--handler chaos.handlers:NAME`).

The ledger is independent of the code under test: each completion appends one
JSON line `[message_id, attempt, n, pid]` to $CHAOS_LEDGER with one write() on an O_APPEND
descriptor, before the handler returns (so before the ack). A line therefore
survives a SIGKILL of its process, lines of several processes never interleave,
and every message the broker acked has its line.

Which messages fail or block is decided by the body's `n` (the publishers number
their messages), so a scenario knows in advance which messages are guilty.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

_fd: int | None = None

# Body numbers that pick a message for a fault: `n % MODULUS == residue`.
MODULUS = 50
BAD_TEXT_ONCE = 3  # fails its first attempt with hostile error text, then succeeds
POISON = 7  # always fails with hostile error text: ends in the DLQ (guilty)
BLOCKER = 5  # blocks the event loop with time.sleep on its first attempt (guilty)

# An error text as an undecodable file name gives it: lone surrogates and NULs.
HOSTILE_TEXT = "cannot open /data/r\udcc3\udca9sum\u00e9\x00.txt: \ud800 \x00 not found"


def number(d: Any) -> int | None:
    """The body's `n` when it is an integer (publishers and the demo number them)."""
    body = d.body
    n = body.get("n") if isinstance(body, dict) else None
    return n if isinstance(n, int) else None


def picked(d: Any, residue: int, modulus: int = MODULUS) -> bool:
    """Is this message one of the fraction picked for `residue`?"""
    n = number(d)
    return n is not None and n % modulus == residue


def _note(d: Any) -> None:
    global _fd
    if _fd is None:
        _fd = os.open(os.environ["CHAOS_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    # JSON: a foreign writer's message id may hold anything, even spaces or nothing.
    line = json.dumps([d.message_id, d.attempt, number(d), os.getpid()])
    os.write(_fd, line.encode() + b"\n")


async def _work() -> None:
    await asyncio.sleep(float(os.environ.get("CHAOS_DELAY", "0.01")))


async def record(d: Any) -> None:
    """Take a little time, then record the completion."""
    await _work()
    _note(d)


async def bad_text(d: Any) -> None:
    """Some messages fail with error text holding lone surrogates and NULs: a few
    once (then succeed), a few always (poison)."""
    await _work()
    if picked(d, POISON) or (picked(d, BAD_TEXT_ONCE) and d.attempt == 1):
        raise OSError(HOSTILE_TEXT)
    _note(d)


async def blocking(d: Any) -> None:
    """One message in $CHAOS_BLOCK_EVERY blocks the whole event loop (time.sleep inside
    async def) on its first attempt for $CHAOS_BLOCK_S seconds, longer than the
    visibility timeout."""
    if d.attempt == 1 and picked(d, BLOCKER, int(os.environ.get("CHAOS_BLOCK_EVERY", MODULUS))):
        time.sleep(float(os.environ.get("CHAOS_BLOCK_S", "3")))  # noqa: ASYNC251 - the fault
    await _work()
    _note(d)
