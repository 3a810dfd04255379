"""The dashboard's view of a whole fleet: every worker's presence, consumers and
leases (from their heartbeats), the queue's counts and the shared DLQ."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import NoScriptError

from ccdash import strict_json
from ccdash.brokers.base import DeadLetter, QueueStats
from ccdash.brokers.redis.scripts import SCRIPTS
from ccdash.brokers.redis.views import parse_dead_letters, parse_stats
from ccdash.fleet.connect import connect
from ccdash.fleet.control import CommandResult, _send
from ccdash.text import sanitize


@dataclass(frozen=True, slots=True)
class FleetConsumer:
    """One consumer of one worker."""

    worker: str
    id: str
    state: str
    in_flight: int
    processed: int
    failed: int


@dataclass(frozen=True, slots=True)
class FleetLease:
    """One lease a worker's consumer holds."""

    worker: str
    message_id: str
    consumer: str
    attempt: int
    expires_in: float


@dataclass(frozen=True, slots=True)
class WorkerView:
    """One worker as its last heartbeat described it (alive False: its key expired and
    its pending entries are being claimed by the others)."""

    name: str
    alive: bool
    state: str
    host: str = ""
    pid: int = 0
    beat_age: float | None = None
    concurrency: int = 0
    pending: int = 0  # entries pending for it in Redis (read-ahead + leases)
    processed: int = 0
    failed: int = 0
    consumers: tuple[FleetConsumer, ...] = ()
    leases: tuple[FleetLease, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """The fleet at one moment."""

    at: float  # Redis wall clock, seconds
    queue: QueueStats
    workers: tuple[WorkerView, ...]
    dead_letters: tuple[DeadLetter, ...]

    @property
    def consumers(self) -> tuple[FleetConsumer, ...]:
        """Every live worker's consumers."""
        return tuple(c for w in self.workers if w.alive for c in w.consumers)

    @property
    def leases(self) -> tuple[FleetLease, ...]:
        """Every live worker's leases, soonest expiry first."""
        return tuple(
            sorted(
                (li for w in self.workers if w.alive for li in w.leases),
                key=lambda li: li.expires_in,
            )
        )

    def worker(self, name: str) -> WorkerView | None:
        """The worker called `name`, if registered."""
        return next((w for w in self.workers if w.name == name), None)


def _worker_view(name: str, raw: bytes | None, pending: int, now: float) -> WorkerView:
    if raw is None:
        return WorkerView(name=name, alive=False, state="lost", pending=pending)
    try:
        info = strict_json.loads(raw)  # NaN, Infinity, 1e999: unreadable, not int(inf) later
        return _live_worker(name, info, pending, now)
    except (ValueError, TypeError, AttributeError, RecursionError, OverflowError):
        # A heartbeat this code did not write (another version, a foreign writer):
        # the worker is shown alive, without the details, instead of failing the read.
        return WorkerView(name=name, alive=True, state="unreadable", pending=pending)


def _live_worker(name: str, info: dict[str, Any], pending: int, now: float) -> WorkerView:
    return WorkerView(
        name=name,
        alive=True,
        state=str(info.get("state", "running")),
        host=str(info.get("host", "")),
        pid=int(info.get("pid", 0)),
        beat_age=max(0.0, now - float(info.get("beat", now))),
        concurrency=int(info.get("concurrency", 0)),
        pending=pending,
        processed=int(info.get("processed", 0)),
        failed=int(info.get("failed", 0)),
        consumers=tuple(
            FleetConsumer(
                name,
                str(c.get("id")),
                str(c.get("state")),
                int(c.get("in_flight", 0)),
                int(c.get("processed", 0)),
                int(c.get("failed", 0)),
            )
            for c in info.get("consumers", ())
        ),
        leases=tuple(
            FleetLease(
                name,
                str(li.get("message_id")),
                str(li.get("consumer")),
                int(li.get("attempt", 0)),
                float(li.get("expires_in", 0.0)),
            )
            for li in info.get("lease_list", ())
        ),
        info=info,
    )


def describe_error(exc: BaseException, url: str) -> str:
    """An error of a fleet read as one safe line: its type and message, sanitised,
    the password of `url` (if any) never shown."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        text = text.replace(password, "***")
    return sanitize(text, 300)


class FleetView:
    """Reads the fleet on one queue. `async with FleetView(url) as fv: await fv.snapshot()`."""

    def __init__(self, url: str, *, max_dead: int = 200) -> None:
        self.url = url
        self.max_dead = max_dead
        self.client: Any = None
        self.keys: Any = None

    async def __aenter__(self) -> FleetView:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect (FleetConnectError, redacted, if Redis is unreachable)."""
        if self.client is None:
            self.client, self.keys = await connect(self.url)

    async def close(self) -> None:
        """Disconnect."""
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def snapshot(self) -> FleetSnapshot:
        """Workers, consumers, leases, counts and dead letters, now."""
        await self.open()
        c, k = self.client, self.keys
        names = [n.decode(errors="backslashreplace") for n in await c.zrange(k.workers, 0, -1)]
        stats = SCRIPTS["stats"]
        for attempt in (1, 2):
            t0 = time.monotonic()
            try:
                async with c.pipeline(transaction=False) as pipe:
                    pipe.evalsha(stats.sha, 0, k.prefix)
                    pipe.xrevrange(k.dead, count=self.max_dead)
                    for n in names:
                        pipe.get(k.presence(n))
                    stats_raw, dead_raw, *presences = await pipe.execute()
                break
            except NoScriptError:  # a fresh (or restarted) Redis: load it once, then again
                if attempt == 2:
                    raise
                await c.script_load(stats.source)
        snap = parse_stats(stats_raw, t0)
        offset = t0 - snap.redis_now  # monotonic minus Redis wall clock
        per = snap.per_worker or {}
        workers = tuple(
            _worker_view(n, raw, per.get(n, 0), snap.redis_now)
            for n, raw in zip(names, presences, strict=True)
        )
        queue = QueueStats(
            ready=snap.ready,
            delayed=snap.delayed,
            in_flight=snap.in_flight,
            dead=snap.dead,
            published=snap.published,
            acked=snap.acked,
            dead_lettered=snap.dead_lettered,
            redelivered=snap.redelivered,
        )
        return FleetSnapshot(
            at=snap.redis_now,
            queue=queue,
            workers=workers,
            dead_letters=tuple(parse_dead_letters(dead_raw, offset)),
        )

    async def command(
        self,
        secret: bytes | str | None,
        worker: str,
        action: str,
        *,
        wait: float | None = 5.0,
        **args: Any,
    ) -> CommandResult:
        """Send a signed command to one worker (`*`: all) and, with `wait`, its outcome."""
        await self.open()
        return await _send(self.client, self.keys, secret, worker, action, wait, args)

    async def kill_consumer(
        self, secret: bytes | str | None, worker: str, consumer: str
    ) -> CommandResult:
        """Crash one consumer of one worker (its leases go to the others at once)."""
        return await self.command(secret, worker, "kill", consumer=consumer)

    async def scale(self, secret: bytes | str | None, worker: str, n: int) -> CommandResult:
        """Set one worker's concurrency."""
        return await self.command(secret, worker, "scale", n=n)

    async def drain(self, secret: bytes | str | None, worker: str) -> CommandResult:
        """Let a worker finish what it holds, hand back the rest, and exit."""
        return await self.command(secret, worker, "drain")
