"""Publishing a workload's messages: the load's generated ones and the drills' extra
ones, each written down in the loss checker's ledger once the broker took it.

A publish the broker has not confirmed when publishing ends is in doubt: never
guessed at, it is settled by the broker's own answer (`settle`), or counted
`unconfirmed` if none comes.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import math
import random
from collections.abc import Callable
from typing import Any

from ccdash.aio import cancel_and_wait, consume_outcome, wait_tasks
from ccdash.engine import Engine
from ccdash.scenario.ledger import Ledger
from ccdash.scenario.model import Scenario
from ccdash.scenario.run_events import RunEvent


class Publisher:
    """Publishes for one workload run; `note` gets each generated message's digest line,
    `emit` the run's events."""

    def __init__(
        self,
        scenario: Scenario,
        engine: Engine,
        ledger: Ledger,
        rng: random.Random,
        note: Callable[[bytes], None],
        emit: Callable[[str, str], None],
    ) -> None:
        self.engine = engine
        self.clock = engine.clock
        self.ledger = ledger
        self.rng = rng
        self.note = note
        self.emit = emit
        self.mix = scenario.load.mix
        self.mix_cum = list(itertools.accumulate(m.share for m in self.mix))
        self.poison_rate = scenario.handler.poison_rate
        self.generated = 0
        self.extra = 0
        self.unconfirmed = 0  # publishes the broker did not confirm (see settle)
        self.in_doubt: list[tuple[asyncio.Future[str], float, int]] = []  # pub, at, priority
        self.stopped: asyncio.Future[None] | None = None  # set when the run is stopped
        self.until: float | None = None  # clock time publishing is over

    async def publish_generated(self, at: float) -> None:
        """Publish the load's next message, generated `at` seconds into the run."""
        rng = self.rng
        i = self.generated = self.generated + 1
        m = self.mix[
            bisect.bisect_right(self.mix_cum, rng.random() * self.mix_cum[-1])
            if len(self.mix) > 1
            else 0
        ]
        body: dict[str, Any] = {"n": i, "type": m.type}
        if self.poison_rate and rng.random() < self.poison_rate:
            body["poison"] = True
        self.note(f"{at:.6f}|{m.priority}|{json.dumps(body)}\n".encode())
        await self.publish(body, m.priority)

    async def publish_extra(self, *, poison: bool = False) -> str | None:
        """Publish one message outside the load shape (bursts, poison drills)."""
        self.extra += 1
        m = self.mix[0]
        body: dict[str, Any] = {"n": f"x{self.extra}", "type": "poison" if poison else m.type}
        if poison:
            body["poison"] = True
        return await self.publish(body, m.priority)

    async def publish(self, body: dict[str, Any], priority: int) -> str | None:
        """Publish and write the id down once the engine accepts the message. A publish
        the broker has not confirmed when the run is stopped or its publishing time is
        up (a full queue, an unreachable Redis) is given up: never accepted, so not in
        the ledger, and counted in `unconfirmed`. Returns None then."""
        t = self.clock.now()
        broker = self.engine.broker
        if broker.stores_on_publish_nowait and broker.config.capacity is None:
            # In-process and unbounded: the publish cannot wait; nothing to give up.
            mid = await self.engine.publish(body, priority=priority)
            self.ledger.record_publish(mid, t, priority)
            return mid
        pub = asyncio.ensure_future(self.engine.publish(body, priority=priority))
        # If this run is cancelled mid-wait (the dashboard quits with Redis away), the
        # broker fails `pub` later with nobody awaiting it: no "never retrieved" traceback.
        pub.add_done_callback(consume_outcome)
        waits: set[asyncio.Future[Any]] = {pub}
        if self.stopped is not None:
            waits.add(self.stopped)
        timer = None
        if self.until is not None and math.isfinite(self.until):
            time_up: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def up() -> None:
                if not time_up.done():
                    time_up.set_result(None)

            timer = self.clock.call_at(self.until, up)
            waits.add(time_up)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if timer is not None:
                timer.cancel()
        if not pub.done():
            # In doubt: the broker may have stored it, its reply still on the way. Never
            # guess: the broker's answer to this publish settles it (`settle`).
            self.in_doubt.append((pub, t, priority))
            return None
        mid = pub.result()
        self.ledger.record_publish(mid, t, priority)
        return mid

    async def settle(self, within: float) -> None:
        """Publishing is over: wait (up to `within` s) for the broker's answer to every
        publish still in doubt. One it confirms is published (in the ledger, waited for
        like any other); one it refused, or never answered, is counted `unconfirmed`."""
        doubts, self.in_doubt = self.in_doubt, []
        if not doubts:
            return
        left = await wait_tasks(self.clock, [p for p, _, _ in doubts], within)
        await cancel_and_wait(self.clock, left, "unanswered publishes")
        for pub, t, priority in doubts:
            if pub.cancelled() or pub.exception() is not None:
                self.unconfirmed += 1
            else:
                self.ledger.record_publish(pub.result(), t, priority)
        confirmed = len(doubts) - self.unconfirmed
        self.emit(
            RunEvent.PUBLISHES_SETTLED,
            f"{len(doubts)} publishes in doubt when publishing "
            f"ended: {confirmed} confirmed by the broker, {self.unconfirmed} not "
            "(never stored as far as it answered; not counted)",
        )
