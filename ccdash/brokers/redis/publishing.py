"""Publishing on the Redis broker: staged for the flusher's group commit, or one
round trip when a dedup id must be checked. A mixin of RedisBroker, kept apart for
size."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ccdash.aio import consume_outcome
from ccdash.brokers.base import (
    MAX_PRIORITY,
    BrokerError,
    QueueFull,
    check_publish_args,
    encode_body,
    storable_text,
)
from ccdash.brokers.redis.link import evalsha
from ccdash.brokers.redis.local import encode_stored
from ccdash.brokers.redis.scripts.delivery import UNKNOWN
from ccdash.clock import MonotonicClock

if TYPE_CHECKING:
    from ccdash.brokers.base import QueueConfig
    from ccdash.brokers.redis.flusher import Flusher
    from ccdash.brokers.redis.keys import Keys
    from ccdash.brokers.redis.reader import Reader
    from ccdash.waiters import Waiters

_REAL_TIME = MonotonicClock()  # re-reading the fleet's count is a real-time matter


class WouldBlock(QueueFull):
    """`publish_nowait` with a dedup id: Redis must be asked; use `await publish`."""


class Publishing:
    """publish / publish_nowait for RedisBroker."""

    config: QueueConfig
    flusher: Flusher
    keys: Keys
    reader: Reader
    _dedup: dict[str, tuple[str, float]]
    _mid_prefix: str
    _seq: int
    _room_waiters: Waiters
    offset: float  # local monotonic minus Redis wall clock (seconds)

    if TYPE_CHECKING:

        def _check_open(self) -> None: ...

        def outstanding(self) -> int: ...

    def _new_id(self) -> str:
        self._seq += 1
        return f"{self._mid_prefix}-{self._seq}"

    def _full(self) -> bool:
        cap = self.config.capacity
        return cap is not None and self.outstanding() >= cap

    def publish_nowait(self, body: Any, *, priority: int = 0, dedup_id: str | None = None) -> str:
        """Queue a message for the next pipeline (group commit); returns its id."""
        self._check_open()
        _check_priority(priority)
        if dedup_id is not None:
            dedup_id = storable_text(dedup_id, None)
            known = self._dedup.get(dedup_id)
            if known is not None and known[1] > time.monotonic():
                return known[0]
            raise WouldBlock("a dedup id needs a round trip to Redis")
        if self._full():
            raise QueueFull(f"queue is full ({self.config.capacity} messages)")
        data, is_json = encode_body(body, self.config.max_body_bytes)
        return self._stage(data, is_json, priority, None)

    def _stage(
        self,
        data: bytes,
        is_json: bool,
        priority: int,
        stored: asyncio.Future[None] | None,
        *,
        kick: bool = True,
    ) -> str:
        """Queue a message for the next group commit (kicking the flusher unless the
        caller sends it); `stored` is resolved once Redis has it. Returns its id."""
        mid = self._new_id()
        prio = int(priority)
        p, m, d = b"%d" % prio, mid.encode(), (b"j" if is_json else b"b") + data
        if p not in self.reader.prios:  # a level the reader may not know: it fetches next
            self.reader.changed()
        t = b"%d" % ((time.monotonic() - self.offset) * 1000)  # Redis's clock, in ms
        # The publish script's 4 arguments (priority, id, time, body), RESP-encoded.
        self.flusher.outbox.append(
            (
                prio,
                b"$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                % (len(p), p, len(m), m, len(t), t, len(d), d),
                stored,
            )
        )
        if kick:
            self.flusher.kick()
        return mid

    async def publish_many(self, bodies: Sequence[Any], *, priority: int = 0) -> list[str]:
        """Publish several in group commits; returns their ids once Redis has them all.
        One Redis refused (its level's key is no stream) raises BrokerError as
        `publish` does, once the others are stored (`publish_nowait` + `flush` cannot
        tell: nobody waits on a staged publish)."""
        self._check_open()
        _check_priority(priority)
        loop = asyncio.get_running_loop()
        ids: list[str] = []
        stored: list[asyncio.Future[None]] = []
        refused: list[Exception] = []
        try:
            for body in bodies:
                if self._full():  # backpressure: send what we have, then wait for room
                    self.flusher.kick()
                    ids.append(await self.publish(body, priority=priority))
                    continue
                data, is_json = encode_body(body, self.config.max_body_bytes)
                stored.append(loop.create_future())
                ids.append(self._stage(data, is_json, priority, stored[-1], kick=False))
            await self.flusher.send_now()
            # In order: a batch's publishers are told together, so this parks once a
            # batch, not once a message (gather's callback per future cost a third).
            for fut in stored:
                try:
                    await fut
                except Exception as exc:  # refused: raised once the rest is stored
                    refused.append(exc)
        except BaseException:  # cancelled or failed part-way: nobody reads the others
            for fut in stored:
                fut.add_done_callback(consume_outcome)
            raise
        if refused:
            raise refused[0]
        return ids

    async def publish(self, body: Any, *, priority: int = 0, dedup_id: str | None = None) -> str:
        """Publish and wait until Redis has it (waits for room on a bounded queue)."""
        self._check_open()
        _check_priority(priority)
        data, is_json = encode_body(body, self.config.max_body_bytes)
        if dedup_id is not None:  # a duplicate adds nothing: it never waits for room
            dedup_id = storable_text(dedup_id, None)
            known = self._dedup.get(dedup_id)
            if known is not None and known[1] > time.monotonic():
                return known[0]
        ask = True
        while self._full():
            if ask:  # for a fresh count of the fleet's messages: first, then every 0.25 s
                self.flusher.want_stats = True
                self.flusher.kick()
            # Every stats read wakes it; one it asked for, not one per read (a busy loop).
            ask = not await self._room_waiters.park_until(_REAL_TIME, time.monotonic() + 0.25)
            self._check_open()
        if dedup_id is None:  # group-committed with other publishes and acks
            stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            mid = self._stage(data, is_json, priority, stored, kick=False)
            await self.flusher.send_now()  # at once if the write path is idle
            await stored
            return mid
        mid = self._new_id()
        if b"%d" % int(priority) not in self.reader.prios:
            self.reader.changed()
        window = max(1, int(self.config.dedup_window * 1000))
        token = secrets.token_hex(8)
        r = await self.flusher.call(
            evalsha(
                "publish",
                self.keys.prefix,
                token,
                window,
                int(priority),
                mid,
                encode_stored(data, is_json),
                dedup_id or "",
            ),
            check=("GET", self.keys.publish_mark(token)),  # sent again past MARK_KEEP
        )
        if not isinstance(r, list):  # the mark's value (`check`): the ids, JSON
            if r is None:
                raise BrokerError(UNKNOWN)
            r = json.loads(r) if r else []
        if r:
            mid = r[0].decode() if isinstance(r[0], bytes) else str(r[0])
        if dedup_id is not None:
            self._dedup[dedup_id] = (mid, time.monotonic() + self.config.dedup_window)
            if len(self._dedup) > 10_000:
                now = time.monotonic()
                self._dedup = {k: v for k, v in self._dedup.items() if v[1] > now}
        return mid


def _check_priority(priority: object) -> None:
    """A level per priority, from -MAX_PRIORITY to MAX_PRIORITY: the scripts drop any
    other from the level registry, and its messages would never be fetched."""
    if type(priority) is not int or not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        check_publish_args(priority, None)
