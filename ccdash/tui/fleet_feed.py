"""The dashboard's view of the rest of a Redis fleet, and its commands to it.

Not a widget: the app polls `FleetView` through it (one read at a time, the next
one scheduled after the last finished) and the consumer and lease panes merge
its rows with the local engine's. A remote consumer is keyed `worker/cid`;
commands on it go to its worker through the signed control channel, with the
secret from $CCDASH_CONTROL_SECRET (or $CCDASH_CONTROL_SECRET_FILE).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from ccdash.brokers import redact_url
from ccdash.fleet import (
    CommandResult,
    ControlError,
    FleetConsumer,
    FleetLease,
    FleetSnapshot,
    FleetView,
    WorkerView,
    load_secret,
)
from ccdash.fleet.view import describe_error

POLL_EVERY = 1.0  # seconds between fleet reads (each one a few Redis round trips)
# A Redis that went away is retried at most this far apart: the header says it is
# unreachable until a read succeeds, so a long gap would keep saying so after it is back.
RETRY_CAP = 2.0
SEP = "/"


class FleetRefused(Exception):
    """A fleet command that cannot be sent (no secret, unknown worker)."""


class FleetFeed:
    """The fleet's other workers as of the last read, and commands to them."""

    def __init__(
        self,
        url: str,
        own_worker: str,
        *,
        view: FleetView | None = None,
        poll_every: float = POLL_EVERY,
    ) -> None:
        self.url = url
        self.own_worker = own_worker
        self.view = view or FleetView(url)
        self.poll_every = poll_every
        self.snapshot: FleetSnapshot | None = None
        self.now: Callable[[], float] = time.monotonic  # when reads happen (tests set it)
        self.read_at = 0.0  # `now()` of the last successful read
        self.reads = 0
        self.ready = asyncio.Event()  # set after the first successful read (tests wait on it)

    @property
    def where(self) -> str:
        """The Redis URL, credentials redacted."""
        return redact_url(self.url)

    async def run(self, say: Callable[[str, bool], None]) -> None:
        """Read the fleet until cancelled; `say(message, error)` reports trouble once and
        the recovery once."""
        delay, failing = self.poll_every, False
        try:
            while True:
                try:
                    self.snapshot = await self.view.snapshot()
                    self.read_at = self.now()
                    self.reads += 1
                    self.ready.set()
                    if failing:
                        say(f"fleet view: reading {self.where} again", False)
                    delay, failing = self.poll_every, False
                except Exception as exc:  # Redis away: shown, retried
                    if not failing:
                        say(
                            f"fleet view: cannot read {self.where}: "
                            f"{describe_error(exc, self.url)}; retrying",
                            True,
                        )
                    failing = True
                    delay = min(RETRY_CAP, delay * 2)
                    await self.view.close()  # a fresh connection next time
                await asyncio.sleep(delay)
        finally:
            await self.view.close()

    # -- what the panes show ----------------------------------------------------

    def workers(self) -> tuple[WorkerView, ...]:
        """The other live workers."""
        snap = self.snapshot
        if snap is None:
            return ()
        return tuple(w for w in snap.workers if w.alive and w.name != self.own_worker)

    def consumers(self) -> list[tuple[str, FleetConsumer, float | None]]:
        """(key, consumer, heartbeat age) of every other worker's consumers."""
        return [(key(c.worker, c.id), c, w.beat_age) for w in self.workers() for c in w.consumers]

    def leases(self) -> list[FleetLease]:
        """Every other worker's leases, soonest expiry first, their time left aged to now:
        a worker's list is as of its heartbeat (`beat_age` old when read), read up to
        `poll_every` ago, while the pane around it is as of this tick."""
        since = self.now() - self.read_at
        return sorted(
            (
                dataclasses.replace(li, expires_in=li.expires_in - (w.beat_age or 0.0) - since)
                for w in self.workers()
                for li in w.leases
            ),
            key=lambda li: li.expires_in,
        )

    def lease_age(self) -> float | None:
        """How old the oldest worker's lease list is now (None: no other worker)."""
        workers = self.workers()
        if not workers:
            return None
        return self.now() - self.read_at + max(w.beat_age or 0.0 for w in workers)

    def in_flight(self) -> int:
        """Leases the other workers hold."""
        return sum(len(w.leases) for w in self.workers())

    def owner(self, consumer_key: str | None) -> tuple[WorkerView, str] | None:
        """The worker and consumer id behind a remote key; None for a local consumer."""
        if not consumer_key or SEP not in consumer_key:
            return None
        name, _, cid = consumer_key.rpartition(SEP)
        worker = next((w for w in self.workers() if w.name == name), None)
        return None if worker is None else (worker, cid)

    # -- commands ---------------------------------------------------------------------

    async def command(self, worker: str, action: str, **args: Any) -> CommandResult:
        """Sign and send `action` to `worker`; wait for its answer in the audit stream.
        FleetRefused when no control secret is configured (nothing is sent)."""
        try:
            secret = load_secret()
        except ControlError as exc:
            raise FleetRefused(str(exc)) from None
        if secret is None:
            raise FleetRefused(
                "no control secret: set CCDASH_CONTROL_SECRET (or "
                "CCDASH_CONTROL_SECRET_FILE) to the fleet's secret and restart"
            )
        return await self.view.command(secret, worker, action, **args)


def key(worker: str, cid: str) -> str:
    """A remote consumer's row key and label: `worker/cid`."""
    return f"{worker}{SEP}{cid}"


def describe(result: CommandResult) -> tuple[str, bool]:
    """A command's outcome as a log line and whether it is an error."""
    what = f"{result.action} on {result.worker}"
    if result.status == "accepted":
        return f"{what}: {result.detail or 'done'}", False
    detail = f": {result.detail}" if result.detail else ""
    return f"{what} {result.status}{detail}", True
