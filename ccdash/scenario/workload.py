"""The workload: publishes a scenario's load, fires its drills, and checks for loss.

    engine = scenario.make_engine(seed=7)
    workload = Workload(scenario, engine, seed=7)
    async with engine:
        await workload.run()            # the scenario's duration, then a bounded drain
    report = workload.report()

Everything runs on the engine's clock, so a FakeClock drives a whole run in tests.
One driver coroutine merges the arrival stream and the drill timeline; it sleeps
until the next of them and creates no task per message.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from ccdash.aio import CANCEL_DEADLINE
from ccdash.brokers.base import QueueStats
from ccdash.engine import ConsumerState, Engine, Event, EventKind
from ccdash.scenario.arrivals import arrival_times
from ccdash.scenario.draining import drain, end_note
from ccdash.scenario.drill_record import DRILL_ACTIONS, DrillRecord
from ccdash.scenario.drills import DrillRunner
from ccdash.scenario.ledger import ledger_of
from ccdash.scenario.model import DrillSpec, Scenario
from ccdash.scenario.pause import Pause
from ccdash.scenario.publishing import Publisher
from ccdash.scenario.report import build_report
from ccdash.scenario.run_events import (
    DONE,
    DRAINING,
    INTERRUPTED,
    READY,
    RUNNING,
    Progress,
    RunEvent,
    RunPhase,
    WorkloadEvent,
)


class Workload:
    """A scenario's load generator, simulated-handler records, drills and loss checker."""

    def __init__(self, scenario: Scenario, engine: Engine, seed: int | None = None) -> None:
        self.scenario = scenario
        self.engine = engine
        self.clock = engine.clock
        if seed is None:
            seed = engine.config.seed if engine.config.seed is not None else scenario.seed
        self.seed = seed
        self.ledger = ledger_of(engine)
        self.ledger.listeners.append(self._completed)
        self.rng = random.Random(f"ccdash-load-{seed}") if seed is not None else random.Random()
        drill_rng = random.Random(f"ccdash-drills-{seed}") if seed is not None else random.Random()
        self.drills = DrillRunner(self, drill_rng)
        self.drills.on_change = self._changed
        engine.add_listener(self._engine_event)
        self.phase: RunPhase = READY
        self.started_at: float | None = None
        self.publish_ended_at: float | None = None
        self.ended_at: float | None = None
        self.stats_at_start: QueueStats | None = None  # the queue's counters as the run began
        self.duration = scenario.duration
        self.timeline_scale = 1.0
        self.stop_reason: str | None = None
        self.drained: bool | None = None
        # A shared broker's URL (a Redis fleet): other workers finish our messages too.
        self.shared_url: str | None = None
        self.purged = 0
        self.unplanned: list[dict[str, Any]] = []
        self.events: deque[WorkloadEvent] = deque(maxlen=500)
        self._digest = hashlib.sha256()
        self._timeline: list[tuple[float, int, DrillSpec | Callable[[], None]]] = []
        self._tseq = itertools.count()
        self._on_event: Callable[[WorkloadEvent], None] | None = None
        self._callback_error: BaseException | None = None
        self._pause = Pause(self.clock)
        self._stopped: asyncio.Future[None] | None = None
        self.publisher = Publisher(
            scenario, engine, self.ledger, self.rng, self._digest.update, self.emit
        )

    # -- public API -----------------------------------------------------------

    @property
    def drill_results(self) -> list[DrillRecord]:
        """Every drill fired so far (scripted and interactive), oldest first."""
        return self.drills.results

    def available_drills(self) -> list[str]:
        """The scenario's drills by name, then the built-in actions."""
        names = [d.label for d in self.scenario.drills]
        return list(dict.fromkeys([*names, *DRILL_ACTIONS]))

    async def trigger_drill(
        self, action: str, target: str = "busiest", **params: Any
    ) -> DrillRecord:
        """Fire a drill now: an action (kill, hang, ...) or a scenario drill by name."""
        return await self.drills.fire_named(action, target, **params)

    async def inject_burst(self, n: int) -> DrillRecord:
        """Publish `n` extra messages at once."""
        return await self.trigger_drill("burst", count=n)

    async def inject_poison(self, n: int = 1) -> DrillRecord:
        """Publish `n` messages that always fail (they must end in the DLQ)."""
        return await self.trigger_drill("poison", count=n)

    def stop(self, reason: str = "stopped") -> None:
        """End the run early (Ctrl-C): publishing stops; the report says why."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._pause.wake()
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called."""
        return self.stop_reason is not None

    def elapsed(self) -> float:
        """Seconds since the run started (0 before)."""
        if self.started_at is None:
            return 0.0
        return (self.ended_at or self.clock.now()) - self.started_at

    def after(self, seconds: float, fn: Callable[[], None]) -> None:
        """Call `fn` on the run's timeline `seconds` from now."""
        heapq.heappush(self._timeline, (self.elapsed() + seconds, next(self._tseq), fn))
        self._pause.wake()

    def report(self) -> dict[str, Any]:
        """The headless report ("Contract: headless report")."""
        return build_report(self)

    def lost_now(self) -> int:
        """The loss checker's count at this instant (the same check as the report's
        `lost`), for a live view: 0 while everything is accounted for."""
        broker = self.engine.broker
        stats = broker.stats()
        dead = broker.dead_letters()
        unseen = max(0, stats.dead - len(dead))
        start = self.stats_at_start
        if self.shared_url is not None and start is not None:
            # Other workers ack our messages out of the Tap's sight until the run's end
            # (record_elsewhere): count the fleet's acks beyond ours as placed, so a
            # live reading never shows a loss that is not one.
            unseen += max(0, stats.acked - start.acked - len(self.ledger.done))
        return self.ledger.check(
            stats.ready + stats.delayed + stats.in_flight,
            {d.message_id for d in dead},
            self.purged,
            placed_unseen=unseen,
        ).lost

    def sequence_digest(self) -> str:
        """A hash of the generated messages and scheduled drills: equal seeds, equal digests."""
        return self._digest.hexdigest()[:16]

    def progress(self) -> Progress:
        """Counts for a live view."""
        snap = self.engine.snapshot(max_leases=0, max_dead=0)
        failed = sum(1 for c in snap.consumers if c.state == ConsumerState.FAILED)
        return Progress(
            elapsed=self.elapsed(),
            duration=self.duration,
            phase=self.phase,
            published=len(self.ledger.published),
            completed=len(self.ledger.done),
            depth=snap.queue.depth,
            in_flight=snap.queue.in_flight,
            dead=snap.queue.dead,
            consumers_up=snap.live_consumers,
            consumers_failed=failed,
            ack_rate=snap.ack_rate,
            publish_rate=snap.publish_rate,
            drills_fired=len(self.drills.results),
            drills_planned=len(self.scenario.drills),
        )

    @property
    def unconfirmed(self) -> int:
        """Publishes the broker did not confirm (never stored, as far as it answered)."""
        return self.publisher.unconfirmed

    async def publish_extra(self, *, poison: bool = False) -> str | None:
        """Publish one message outside the load shape (bursts, poison drills)."""
        return await self.publisher.publish_extra(poison=poison)

    # -- the run -----------------------------------------------------------------

    async def run(
        self, duration: float | None = None, on_event: Callable[[WorkloadEvent], None] | None = None
    ) -> None:
        """Publish per the load shape and fire the timed drills for `duration` seconds
        (default: the scenario's; a different one stretches its timeline to fit;
        `math.inf` runs until `stop()`, repeating the load shape), then wait up to
        the scenario's drain_timeout for the queue to empty and drills to settle."""
        if self.phase != READY:
            raise RuntimeError("a workload runs once")
        if not self.engine.running:
            raise RuntimeError("start the engine first: `async with engine: await run()`")
        sc = self.scenario
        total = sc.duration if duration is None else float(duration)
        if not total > 0:
            raise ValueError(f"duration must be positive, got {duration}")
        forever = math.isinf(total)
        self.duration = total
        self.timeline_scale = k = 1.0 if forever else total / sc.duration
        self._on_event = on_event
        self._stopped = self.publisher.stopped = asyncio.get_running_loop().create_future()
        self.started_at = self.clock.now()
        self.stats_at_start = self.engine.broker.stats()
        self.phase = RUNNING
        for spec in sc.drills:
            heapq.heappush(self._timeline, (spec.at * k, next(self._tseq), spec))
            self._digest.update(
                f"drill|{spec.at * k:.6f}|{spec.action}|{spec.target}|"
                f"{sorted(spec.params)}\n".encode()
            )
        load = sc.load
        rate = (
            (lambda t: load.rate_at(t % sc.duration))
            if forever
            else (lambda t: load.rate_at(t / k))
        )
        arrivals = arrival_times(rate, load.max_rate(), self.rng, mode=load.arrivals, until=total)
        note = f"; timeline scaled x{k:g} to fit {total:g} s" if k != 1.0 else ""
        self.emit(RunEvent.RUN_STARTED, f"{sc.name}: {sc.summary()}{note}")
        try:
            await self._drive(arrivals, total)
            self.publish_ended_at = self.clock.now()
            await self.publisher.settle(CANCEL_DEADLINE if self.stopping else sc.drain_timeout)
            if not self.stopping:
                assert self._stopped is not None
                await drain(self, self._stopped, self._pause.until)
        finally:
            self.ended_at = self.clock.now()
            await self.drills.close()
            self.phase = INTERRUPTED if self.stopping else DONE
            self.emit(RunEvent.RUN_ENDED, end_note(self))
            self._on_event = None
        if self._callback_error is not None:
            raise self._callback_error

    async def _drive(self, arrivals: Any, total: float) -> None:
        # Compare absolute clock times: offsets added to the start time, never the
        # other way round, so a timer due at a time always finds that time reached.
        timeline, clock = self._timeline, self.clock
        start = self.started_at
        assert start is not None
        end = start + total
        self.publisher.until = end
        nxt = next(arrivals, None)
        while not self.stopping:
            now = clock.now()
            while timeline and start + timeline[0][0] <= min(now, end) and not self.stopping:
                await self._fire(heapq.heappop(timeline)[2])
            if now >= end:
                break
            while nxt is not None and start + nxt <= now and not self.stopping:
                await self.publisher.publish_generated(nxt)
                nxt = next(arrivals, None)
            wake = min(
                end,
                math.inf if nxt is None else start + nxt,
                start + timeline[0][0] if timeline else math.inf,
            )
            await self._pause.until(wake)

    async def _fire(self, item: DrillSpec | Callable[[], None]) -> None:
        if not isinstance(item, DrillSpec):
            item()
            return
        params = dict(item.params)
        if params.get("for"):
            params["for"] = params["for"] * self.timeline_scale
        await self.drills.fire(
            item.action,
            item.target,
            name=item.label,
            source="scheduled",
            max_detection_s=item.max_detection_s,
            max_recovery_s=item.max_recovery_s,
            **params,
        )

    def _changed(self) -> None:
        if self.phase == DRAINING:
            self._pause.wake()

    # -- what the engine and the handlers tell us --------------------------------

    def _completed(self, mid: str, consumer: str, at: float) -> None:
        self.drills.completed(mid, consumer, at)

    def _engine_event(self, ev: Event) -> None:
        # Called inside engine code: a bug here must not break the engine.
        try:
            self._on_engine_event(ev)
        except Exception as exc:
            self._callback_error = self._callback_error or exc

    def _on_engine_event(self, ev: Event) -> None:
        self.drills.engine_event(ev)
        fields = dict(ev.fields)
        if ev.kind == EventKind.DEAD_LETTERED:
            self.drills.dead_lettered({str(fields.get("message_id"))}, ev.at)
        elif ev.kind == EventKind.CONSUMER_FAILED:
            if self.drills.waiting_ids():  # leases released at max_attempts went to the DLQ
                dead = {d.message_id for d in self.engine.broker.dead_letters()}
                self.drills.dead_lettered(dead, ev.at)
            cid = str(fields.get("consumer"))
            if not self.drills.is_victim(cid) and self.started_at is not None:
                self.unplanned.append(
                    {
                        "consumer": cid,
                        "reason": str(fields.get("reason")),
                        "at": round(ev.at - self.started_at, 3),
                    }
                )
        elif ev.kind == EventKind.DLQ_PURGED:
            count = fields.get("count")
            self.purged += count if isinstance(count, int) else 0
        self.emit(ev.kind, ev.message, source="engine", at=ev.at, fields=fields)

    def emit(
        self,
        kind: str,
        message: str,
        *,
        source: str = "workload",
        at: float | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        """Record an event of the run and pass it to the `on_event` callback.

        Drill steps go out through the engine's event stream, so its listeners (the
        log file, the dashboard) see them; they come back here as engine events.
        """
        if source == "drill":
            self.engine.emit(kind, message, source="drill", **(fields or {}))
            return
        t = self.clock.now() if at is None else at
        rel = t - self.started_at if self.started_at is not None else 0.0
        ev = WorkloadEvent(rel, kind, message, source, tuple((fields or {}).items()))
        self.events.append(ev)
        if self._on_event is not None:
            try:
                self._on_event(ev)
            except Exception as exc:  # never let a view's bug break the engine it watches
                self._callback_error = self._callback_error or exc
                self._on_event = None
