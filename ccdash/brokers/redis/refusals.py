"""Publish batches Redis refused before storing any of them: out of memory
(`maxmemory` with `noeviction`) or a read-only replica. Redis checks both at a
script's first write only, so such a refusal means none of the batch was stored:
the publishes somebody awaits fail with a BrokerError saying why (not a silent
wait for memory that may never come); those nobody awaits are sent again.

Ending leases (nack, defer, release) Redis refuses the same way (a read-only
replica: every write; out of memory cannot, see `EndRefusals`) stored nothing
either: the leases stay with Redis, which gives their messages again once the
visibility timeout has passed. Nothing is lost and no consumer is failed for it."""

from __future__ import annotations

import asyncio
import logging
from typing import TypeGuard

from redis.exceptions import OutOfMemoryError, ReadOnlyError

from ccdash.brokers.base import BrokerError
from ccdash.brokers.redis.scripts.delivery import UNKNOWN
from ccdash.text import counted

log = logging.getLogger("ccdash.redis")

Item = tuple[int, bytes, "asyncio.Future[None] | None"]  # priority, script args, waiter


def stored_nothing(exc: BaseException | None) -> TypeGuard[Exception]:
    """Is this a publish script's refusal before its first write (nothing stored)?"""
    return isinstance(exc, OutOfMemoryError | ReadOnlyError)


class Spell:
    """A condition said once when it begins (an error) and once when it ends."""

    def __init__(self, ended: str) -> None:
        self.on = False
        self.ended = ended

    def begin(self, msg: str, *args: object) -> None:
        """The condition holds (again): logged unless already in a spell."""
        if not self.on:
            self.on = True
            log.error(msg, *args)

    def end(self) -> None:
        """The condition is over: logged if a spell was on."""
        if self.on:
            self.on = False
            log.warning(self.ended)


class Refusals:
    """Tells the publishers of refused batches; logs once per spell of refusals."""

    def __init__(self) -> None:
        self.spell = Spell("Redis stores publishes again")

    def refuse(self, chunk: list[Item], why: str) -> list[Item]:
        """Fail the awaited publishes of `chunk`; returns the others, to send again."""
        error = BrokerError(f"not stored: Redis refused the publish: {why}")
        for _, _, fut in chunk:
            if fut is not None and not fut.done():
                fut.set_exception(error)
        self.spell.begin("publishes refused by Redis (not stored; their callers told): %s", why)
        return [item for item in chunk if item[2] is None]

    def stored(self) -> None:
        """A batch was stored: a spell of refusals is over."""
        self.spell.end()


class EndRefusals:
    """Lease ends (nack, defer, release, hand-back) Redis refused: said once per spell.

    The end script's first write is XACK, which needs no memory, and Redis lets a
    script that has written go on: out of memory never refuses it. A read-only
    replica refuses every write, the first included: nothing was stored."""

    def __init__(self) -> None:
        self.spell = Spell("Redis stores nacks and hand-backs again")

    def refused(self, n: int, why: str) -> None:
        """`n` lease ends were refused (or failed) for `why`: their leases stay with Redis."""
        self.spell.begin(
            "%s (nack, defer or release) refused by Redis: %s; the leases stay with "
            "Redis, their messages come back when the visibility timeout passes",
            counted(n, "lease end"),
            why,
        )

    def stored(self) -> None:
        """A lease end was stored: a spell of refusals is over."""
        self.spell.end()


def fail_unstored(chunk: list[Item], failed: object) -> int:
    """A publish batch's reply: the positions Redis did not store (their level's key
    is no stream: a foreign writer's), or -1 (sent again past MARK_KEEP, the mark gone:
    the outcome of all of it unknown). Their publishers get a BrokerError; returns how
    many."""
    bad = {p for p in failed if 0 <= p < len(chunk)} if isinstance(failed, list) else set()
    why = "not stored: the key of priority {} is no stream"
    if failed == -1:
        bad, why = set(range(len(chunk))), UNKNOWN
    if bad:
        log.error("%d of %d publishes %s", len(bad), len(chunk), why.format(chunk[min(bad)][0]))
    for pos in bad:
        prio, _, fut = chunk[pos]
        if fut is not None and not fut.done():
            fut.set_exception(BrokerError(why.format(prio)))
    return len(bad)
