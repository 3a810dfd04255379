"""Heartbeats and failover for a Redis worker: one steady tick.

Each tick (a third of the heartbeat TTL) it refreshes this worker's presence
key (JSON, expires after the TTL, so any dashboard sees the whole fleet), claims
the pending entries of workers whose key has expired (at once: no waiting out
the visibility timeout), reclaims expired leases with XAUTOCLAIM, keeps the
leases of buffered entries alive, and asks for fresh fleet counts.

No false failover after an outage: after a reconnect, or a round trip that took
longer than half a TTL (Redis paused, a network stall: the flusher tells), it
waits one TTL before judging others dead (they need a beat too), and hands back
entries Redis gave us whose reply was lost. Redis also holds every judgement
for one TTL when the fleet's ticks stopped for over half a TTL (scripts.held):
a reap sent before a pause and run after it judges nobody.

A worker restarting under its name takes over its previous process's heartbeat
at once when that process is gone (same host, its pid not running); a name
beating elsewhere is watched for up to one TTL: a new beat means it is alive
(refused), a lapse means it was stale (taken over).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from ccdash import strict_json
from ccdash.brokers.base import REASON_CONSUMER_FAILED, REASON_RELEASED, BrokerError
from ccdash.brokers.redis.keys import GROUP
from ccdash.brokers.redis.link import LinkDown, evalsha

if TYPE_CHECKING:
    from ccdash.brokers.redis.core import RedisCore

log = logging.getLogger("ccdash.redis")

CLAIM_BATCH = 500
# How often, seconds, the fleet (one worker a period) looks for priority levels the
# registry lost while their streams hold messages (see scripts.admin.REDISCOVER):
# they are read again within this plus one fetch interval, without a publish.
REDISCOVER_EVERY = 10.0
PROCESS = secrets.token_hex(8)  # this process, told apart from an earlier one with its pid


def _ours_and_gone(raw: bytes) -> bool:
    """Is this heartbeat record a previous process of this worker on this host that
    is no longer running (or this very process)?"""
    try:
        rec = strict_json.loads(raw)  # Infinity or 1e999 as the pid: int() would overflow
        host, pid = rec["host"], int(rec["pid"])
    except (ValueError, TypeError, KeyError, RecursionError, OverflowError):
        return False  # not a record this code wrote: let it lapse
    if host != socket.gethostname() or pid <= 0:  # os.kill(0 or -N) names a process group
        return False
    if pid == os.getpid():  # a restarted container reuses its pid; this process's own
        return bool(rec.get("proc") != PROCESS)  # brokers carry its token: those are alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # alive under another user; a pid no C int holds
        return False
    return False


class Presence:
    """This worker's heartbeat, and the reaper of dead workers' and expired leases."""

    def __init__(self, broker: RedisCore) -> None:
        self.b = broker
        self.registered = False
        self.started = time.time()
        self.grace_until = 0.0
        self.strays_checked = 0.0
        self.refused = False  # Redis refuses our heartbeats (out of memory, read-only)
        self.data_checked = 0.0  # the reconnect after which the queue's marker was checked
        self.claimed = 0  # entries taken over from dead workers / expired leases
        self.held = False  # Redis held the last judgement (an outage just ended)
        self.rescan_at = 0.0  # when this worker next offers to look for lost levels
        self.rng = random.Random()

    def info(self) -> dict[str, Any]:
        """The presence record (JSON-able)."""
        b = self.b
        rec: dict[str, Any] = {
            "worker": b.worker,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "proc": PROCESS,
            "started": self.started,
            "beat": time.time(),
            "buffered": b.book.buffered,
            "leases": len(b.book.leases),
            "ttl": b.heartbeat_ttl,
            "visibility_timeout": b.vt,
        }
        if b.presence_info is not None:
            try:
                rec.update(b.presence_info())
            except Exception as exc:  # a bad callback must not stop heartbeats
                rec["info_error"] = repr(exc)
        return rec

    def _ttl_ms(self) -> int:
        return int(self.b.heartbeat_ttl * 1000)

    async def register(self) -> None:
        """Join the fleet; a name already alive is refused, a stale one taken over."""
        b = self.b
        ok = await b.flusher.call(
            ("SET", b.keys.presence(b.worker), json.dumps(self.info()), "PX", self._ttl_ms(), "NX")
        )
        if ok is None:
            await self._take_over()
        await b.flusher.call(("ZADD", b.keys.workers, "NX", int(time.time() * 1000), b.worker))
        self.registered = True
        self.grace_until = time.monotonic() + b.heartbeat_ttl
        # A previous process of this name that died (and came back within the TTL,
        # before the others claimed its entries) left leases nobody else will reap.
        await self.recover_strays(
            mode="f", reason=REASON_CONSUMER_FAILED, error=f"worker {b.worker} restarted"
        )

    async def _take_over(self) -> None:
        """Our name has a heartbeat: take it over if it is a previous process's of
        ours, else watch it for up to one TTL (BrokerError if it beats again)."""
        b = self.b
        key = b.keys.presence(b.worker)
        deadline = time.monotonic() + b.heartbeat_ttl + 0.5
        first: bytes | None = None
        while True:
            old = await b.flusher.call(("GET", key))
            if old is None or _ours_and_gone(old):
                taken = await b.flusher.call(
                    evalsha(
                        "takeover",
                        b.keys.prefix,
                        b.worker,
                        old or b"",
                        json.dumps(self.info()),
                        self._ttl_ms(),
                    )
                )
                if taken:
                    if old is not None:
                        log.warning(
                            "worker %s: took over the heartbeat of its previous "
                            "process (no longer running)",
                            b.worker,
                        )
                    return
                continue  # it changed meanwhile: look again
            if first is None:
                first = old
            elif old != first or time.monotonic() > deadline:  # beating (or never lapsing)
                raise BrokerError(f"worker name {b.worker!r} is in use by a live worker")
            await asyncio.sleep(b.heartbeat_ttl / 10)

    async def run(self) -> None:
        """Tick until cancelled."""
        interval = self.b.heartbeat_ttl / 3.0
        while True:
            await asyncio.sleep(interval * self.rng.uniform(0.85, 1.0))
            try:
                await self.tick()
            except (LinkDown, ResponseError, BrokerError) as exc:
                log.debug("heartbeat tick failed: %s", exc)
            except Exception:  # a bug must not silently end the heartbeats
                log.exception("heartbeat tick failed")

    async def tick(self) -> None:
        """One heartbeat round."""
        b = self.b
        fl = b.flusher
        futs: list[asyncio.Future[Any]] = []
        now = b.clock.now()
        reap_expired = b.expiry_now(now) >= now  # not while stalled: its leases come first
        recovered = fl.recovered_at
        if recovered > self.strays_checked:
            self.grace_until = max(self.grace_until, recovered + b.heartbeat_ttl)
        # A stall (no reconnect) lost no reply: grace only, no hunt for strays.
        self.grace_until = max(self.grace_until, fl.stalled_at + b.heartbeat_ttl)
        if self.registered:
            futs.append(
                fl.call(
                    (
                        "SET",
                        b.keys.presence(b.worker),
                        json.dumps(self.info()),
                        "PX",
                        self._ttl_ms(),
                        "GET",
                    )
                )
            )
            futs.append(fl.call(("ZADD", b.keys.workers, "NX", int(time.time() * 1000), b.worker)))
            cfg = b.config
            if time.monotonic() >= self.rescan_at:
                self._rediscover()
            if time.monotonic() >= self.grace_until and fl.down_since is None:
                futs.append(
                    fl.call(
                        evalsha(
                            "reap_dead",
                            b.keys.prefix,
                            b.worker,
                            cfg.max_attempts,
                            CLAIM_BATCH,
                            self._ttl_ms(),
                        )
                    )
                )
            if reap_expired:
                futs.append(
                    fl.call(
                        evalsha(
                            "reap_expired",
                            b.keys.prefix,
                            b.worker,
                            int(b.vt * 1000),
                            cfg.max_attempts,
                            100,
                            self._ttl_ms(),
                        )
                    )
                )
        fl.want_stats = True
        fl.kick()
        keep = asyncio.ensure_future(self.keep_buffer())  # cancelled with the rest
        *results, _ = await asyncio.gather(*futs, keep, return_exceptions=True)
        if self.registered and results:
            self._report(results, reap_expired)
        if recovered > self.data_checked and fl.down_since is None:
            # Back after an outage: did Redis keep the queue? Its marker (written at open,
            # never by a script) is gone after a restart without persistence, even when a
            # publish has re-created the streams since (no read then meets NOGROUP).
            kept = await fl.call(("EXISTS", b.keys.config))
            self.data_checked = recovered
            if not kept:  # what it held is gone; leases taken since the reconnect are not
                b.on_lost_state(leases=False)
        if recovered > self.strays_checked and self.registered and fl.down_since is None:
            self.strays_checked = recovered
            await self.recover_strays()

    def _rediscover(self) -> None:
        """Offer to look for levels the registry lost (one look a period fleet-wide)."""
        b = self.b
        self.rescan_at = time.monotonic() + REDISCOVER_EVERY
        period = max(1, int(REDISCOVER_EVERY * 1000))
        fut = b.flusher.call(evalsha("rediscover", b.keys.prefix, b.worker, period))
        fut.add_done_callback(self._rediscovered)

    def _rediscovered(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        if (exc := fut.exception()) is not None:
            log.debug("looking for lost priority levels failed: %s", exc)
            return
        if found := fut.result():
            log.warning(
                "priority level(s) %s held messages but were missing from the level "
                "registry: registered again",
                ", ".join(p.decode() for p in found),
            )
            self.b.reader.changed()  # fetch next (it reads the registry)

    def _report(self, results: list[Any], reaped_expired: bool = True) -> None:
        prev = results[0]
        if isinstance(prev, Exception) != self.refused:  # e.g. out of memory: said once
            self.refused = not self.refused
            if self.refused:
                log.warning("worker %s: heartbeat refused by Redis: %s", self.b.worker, prev)
            else:
                log.warning("worker %s: heartbeats go through again", self.b.worker)
        if prev is None:
            log.warning(
                "worker %s: its heartbeat had expired; peers may have taken its leases",
                self.b.worker,
            )
        for r in results[2:]:
            if isinstance(r, Exception):
                raise r
        if len(results) == 3 + reaped_expired:  # set, zadd, reap_dead[, reap_expired]
            moved, dead, gone, held = results[2]
            if held and not self.held:
                log.warning(
                    "Redis saw no heartbeat round for over half a TTL (paused, "
                    "restarted or its clock jumped): no worker is judged dead "
                    "for one TTL"
                )
            self.held = bool(held)
            if moved or dead or gone:
                names = ", ".join(g.decode(errors="backslashreplace") for g in gone) or "?"
                log.warning(
                    "claimed %d pending entries of dead worker(s) %s (%d dead-lettered)",
                    moved + dead,
                    names,
                    dead,
                )
                self.claimed += moved + dead
        ready, dead, _held = results[-1] if reaped_expired else (0, 0, 0)
        if ready or dead:
            log.warning("%d expired leases reclaimed (%d dead-lettered)", ready + dead, dead)
            self.claimed += ready + dead

    async def keep_buffer(self) -> None:
        """Extend the leases of entries waiting in the local buffer (after a stall,
        those that ran out in it too; otherwise not those: Redis reclaims them). Those
        held back after a stall (see LocalBook.hold) go back to the buffer once Redis
        says they are still ours, and are dropped when they are not, or when lease
        expiry may be judged past them after all."""
        b = self.b
        book = b.book
        now = b.clock.now()
        judge = b.expiry_now(now)
        book.unhold([e for e in book.stalled if e.deadline <= judge])  # Redis reclaims
        stale = [
            e for e in book.buffered_entries() if judge < e.deadline and e.deadline - now < b.vt / 2
        ]
        stale += book.stalled
        if not stale:
            return
        try:
            flags = await b.extender.extend([(0, "", e) for e in stale], 0)
        except (LinkDown, ResponseError):
            return  # the held ones wait for the next tick
        for e, flag in zip(stale, flags, strict=True):
            # Not handed out meanwhile (a lease's deadline moves with extend; one
            # handed back unhandled has no receipt again: LocalBook.give_back).
            if not e.receipt:
                # Gone: a peer took it over (in a stall); dropped at its turn.
                e.deadline = now + b.vt if flag == 49 else -math.inf  # 49: b"1"
        back = [e for e in book.unhold(stale) if e.deadline > now]
        for e in reversed(back):  # ahead of what was read after them, in their order
            book.add(e, front=True)
        if back:
            b.fetched()

    async def recover_strays(
        self, *, mode: str = "g", reason: str = REASON_RELEASED, error: str = ""
    ) -> None:
        """Entries pending for us that we do not know go back at once: after a lost
        reply (mode 'g': the attempt given back) or left by a previous process of
        this name (mode 'f', consumer-failed: that attempt counts)."""
        b = self.b
        prios = list(await b.flusher.call(("ZRANGE", b.keys.priorities, 0, -1))) or [b"0"]
        levels = [s for p in prios for s in (p, b"r" + p)]
        replies = await asyncio.gather(
            *[
                b.flusher.call(
                    ("XPENDING", b.keys.level_stream(s), GROUP, "-", "+", 1000, b.worker)
                )
                for s in levels
            ],
            return_exceptions=True,
        )
        known = b.book.known()
        args: list[Any] = []
        for s, rows in zip(levels, replies, strict=True):
            if isinstance(rows, BaseException):
                continue
            for eid, _owner, _idle, count in rows:
                if (s, eid) not in known:
                    args += (s, eid, int(count), mode, reason, error, b.worker, 0)
        if args:
            log.warning(
                "handing back %d pending entries this worker does not hold (%s)",
                len(args) // 8,
                error or "delivery reply lost",
            )
            await b.flusher.call(
                evalsha("end", b.keys.prefix, b.worker, 0, b.config.max_attempts, *args)
            )
