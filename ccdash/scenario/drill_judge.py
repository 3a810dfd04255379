"""Judging drills: detection and recovery times, measured as the engine reacts, and
each drill's verdict (pass, fail, done, skipped) by its deadline at the latest.

For kill and hang, detection is the time from the fault until the consumer is
marked failed, and recovery the time until every message it held was handled
elsewhere (acked by another consumer, or dead-lettered). On a shared broker
another worker of the fleet may be the one that handles them, out of sight of
this process's ledger: while a drill waits, the broker is asked where its
messages are.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ccdash.aio import cancel_and_wait, run_within
from ccdash.engine import Engine, Event, EventKind
from ccdash.scenario.drill_record import (
    DONE,
    FAIL,
    FAULTS,
    PASS,
    PENDING,
    VERDICT_EVENTS,
    DrillRecord,
    Verdict,
    deadline_of,
)
from ccdash.scenario.ledger import Ledger
from ccdash.scenario.model import Scenario

if TYPE_CHECKING:
    from ccdash.clock import TimerHandle

FLEET_CHECK_EVERY = 0.5  # seconds between asking a shared broker where waited ids are
FLEET_ASK_DEADLINE = 10.0  # seconds one such question may take


class DrillHost(Protocol):
    """The run as the drills see it (the Workload implements it)."""

    engine: Engine
    scenario: Scenario
    ledger: Ledger
    shared_url: str | None  # a shared broker's URL: other workers finish messages too

    def elapsed(self) -> float:
        """Seconds since the run started."""
        ...

    def emit(
        self,
        kind: str,
        message: str,
        *,
        source: str = ...,
        at: float | None = ...,
        fields: dict[str, Any] | None = ...,
    ) -> None:
        """Record an event of the run."""
        ...

    def after(self, seconds: float, fn: Callable[[], None]) -> None:
        """Call `fn` `seconds` from now (run time)."""
        ...

    async def publish_extra(self, *, poison: bool = ...) -> str | None:
        """Publish one message beyond the load; its id (None if the run ended first)."""
        ...


class DrillJudge:
    """Measures what follows the drills fired on the workload's engine, and judges them."""

    def __init__(self, workload: DrillHost) -> None:
        self.workload = workload
        self.engine = workload.engine
        self.results: list[DrillRecord] = []
        self._victims: dict[str, list[DrillRecord]] = {}  # consumer id -> its fault drills
        self._waiting: dict[str, list[DrillRecord]] = {}  # message id -> records awaiting it
        self.on_change: Callable[[], None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()  # rolling updates, fleet checks
        self._deadlines: list[TimerHandle] = []
        self._fleet_check: asyncio.Future[None] | None = None

    def _watch(self, rec: DrillRecord, ids: Any) -> None:
        rec.pending = set(ids)
        for mid in rec.pending:
            self._waiting.setdefault(mid, []).append(rec)
        if (
            self._waiting
            and self.workload.shared_url is not None
            and (self._fleet_check is None or self._fleet_check.done())
        ):
            self._fleet_check = asyncio.ensure_future(self._check_fleet())
            self._tasks.add(self._fleet_check)
            self._fleet_check.add_done_callback(self._tasks.discard)

    async def _check_fleet(self) -> None:
        """While drills wait on a shared broker: ask it where their messages are."""
        me = asyncio.current_task()
        while self._waiting and (me is None or not me.cancelling()):
            await self.engine.clock.sleep(FLEET_CHECK_EVERY)
            with contextlib.suppress(Exception):  # a Redis hiccup: ask again next time
                await run_within(
                    self.engine.clock, self.ask_fleet(), FLEET_ASK_DEADLINE, "asking the fleet"
                )

    async def ask_fleet(self) -> None:
        """Settle waited ids the shared broker no longer holds (acked by some worker of
        the fleet) or holds dead; a no-op without a shared broker."""
        url, waiting = self.workload.shared_url, self.waiting_ids()
        if url is None or not waiting:
            return
        from ccdash.fleet.settle import locate  # only now: importing it blocks the loop

        where = await locate(url, waiting)
        now = self.engine.clock.now()
        self.dead_lettered(set(where.dead) & self._waiting.keys(), now)
        for mid in waiting - where.outstanding - where.dead:
            self.completed(mid, "another worker", now)

    def _overdue(self, rec: DrillRecord) -> None:
        """The drill's deadline passed: fail it now (after one last look at the fleet)."""
        if rec.verdict != PENDING:
            return
        if self.workload.shared_url is None or not rec.pending:
            self._fail_overdue(rec)
            return

        async def last_look() -> None:
            with contextlib.suppress(Exception):
                await run_within(
                    self.engine.clock, self.ask_fleet(), FLEET_ASK_DEADLINE, "asking the fleet"
                )
            self._fail_overdue(rec)

        task = asyncio.ensure_future(last_look())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fail_overdue(self, rec: DrillRecord) -> None:
        if rec.verdict != PENDING:
            return
        limit = deadline_of(rec)
        if rec.action in FAULTS and rec.detected_after_s is None:
            why = f"{rec.target} was not marked failed"
        elif rec.action == "rolling-update":
            why = "the rolling update had not finished"
        else:
            left = sorted(rec.pending)
            why = (
                f"{len(left)} of {len(rec.held)} messages not handled by any worker "
                f"({', '.join(left[:3])}{', ...' if len(left) > 3 else ''})"
            )
        self._finish(rec, FAIL, f"{why} within {limit:g} s")

    def completed(self, mid: str, consumer: str, at: float) -> None:
        """A handler finished `mid` on `consumer` (from the ledger)."""
        recs = self._waiting.get(mid)
        if not recs:
            return
        for rec in list(recs):
            # A fault's messages count once handled elsewhere; injected ones by anyone.
            if rec.action not in FAULTS or consumer != rec.target:
                self._handled(rec, mid, at)

    def dead_lettered(self, ids: set[str], at: float) -> None:
        """These messages are in the DLQ now: handled, as far as a drill is concerned."""
        for mid in ids & self._waiting.keys():
            for rec in list(self._waiting.get(mid, ())):
                self._handled(rec, mid, at)

    def is_victim(self, cid: str) -> bool:
        """Whether a drill caused this consumer's failure."""
        return cid in self._victims

    def waiting_ids(self) -> set[str]:
        """Message ids some drill still waits for."""
        return set(self._waiting)

    def _handled(self, rec: DrillRecord, mid: str, at: float) -> None:
        rec.pending.discard(mid)
        recs = self._waiting.get(mid)
        if recs is not None:
            if rec in recs:
                recs.remove(rec)
            if not recs:
                del self._waiting[mid]
        if not rec.pending:
            rec.handled_at = at
            self._update(rec)

    def engine_event(self, ev: Event) -> None:
        """Consumer failed / replaced: detection and replacement times."""
        fields = dict(ev.fields)
        if ev.kind == EventKind.CONSUMER_FAILED:
            for rec in self._victims.get(str(fields.get("consumer")), ()):
                if rec.detected_after_s is None:
                    rec.detected_after_s = max(0.0, ev.at - rec.fired_at)
                    released = fields.get("released")
                    if isinstance(released, int) and released != len(rec.held):
                        # a hung consumer looks healthy until caught, so it may take more
                        rec.detail += f"; {released} released when caught"
                    self._update(rec)
        elif ev.kind == EventKind.CONSUMER_REPLACED:
            for rec in self._victims.get(str(fields.get("failed")), ()):
                if rec.replaced_after_s is None:
                    rec.replaced_after_s = max(0.0, ev.at - rec.fired_at)

    def _update(self, rec: DrillRecord) -> None:
        if rec.verdict != PENDING:
            return
        if rec.action in FAULTS:
            if rec.detected_after_s is None or rec.pending:
                return
            handled = rec.handled_at if rec.handled_at is not None else rec.fired_at
            rec.recovered_after_s = max(rec.detected_after_s, handled - rec.fired_at)
            late = []
            if rec.max_detection_s is not None and rec.detected_after_s > rec.max_detection_s:
                late.append(
                    f"detected after {rec.detected_after_s:.2f} s (limit {rec.max_detection_s:g} s)"
                )
            if rec.max_recovery_s is not None and rec.recovered_after_s > rec.max_recovery_s:
                late.append(
                    f"recovered after {rec.recovered_after_s:.2f} s "
                    f"(limit {rec.max_recovery_s:g} s)"
                )
            self._finish(rec, FAIL if late else PASS, "; ".join(late) or rec.detail)
        elif rec.action in ("poison", "burst") and not rec.pending:
            rec.recovered_after_s = max(0.0, (rec.handled_at or rec.fired_at) - rec.fired_at)
            self._finish(
                rec,
                PASS,
                rec.detail
                + (", all dead-lettered or handled" if rec.action == "poison" else ", all handled"),
            )

    def _finish(self, rec: DrillRecord, verdict: Verdict, detail: str) -> None:
        rec.verdict = verdict
        rec.detail = detail
        times = []
        if rec.detected_after_s is not None:
            times.append(f"detected after {rec.detected_after_s:.2f} s")
        if rec.recovered_after_s is not None:
            times.append(f"recovered after {rec.recovered_after_s:.2f} s")
        if verdict == DONE:
            text = f"drill {rec.name}: {detail}"
        else:
            text = f"drill {rec.name}: {verdict.upper()}" + (
                f" ({', '.join(times)})" if times else ""
            )
            if verdict != PASS or not times:
                text += f": {detail}"
        self.workload.emit(
            VERDICT_EVENTS[verdict],
            text,
            source="drill",
            fields={"action": rec.action, "target": rec.target},
        )
        if self.on_change is not None:
            self.on_change()

    def pending(self) -> list[DrillRecord]:
        """Drills still waiting for detection or recovery."""
        return [r for r in self.results if r.verdict == PENDING]

    async def close(self) -> None:
        """The run is over: stop background drills; whatever is still pending failed."""
        for timer in self._deadlines:
            timer.cancel()
        with contextlib.suppress(Exception):  # a last look at the fleet, if one is shared
            await run_within(
                self.engine.clock, self.ask_fleet(), FLEET_ASK_DEADLINE, "asking the fleet"
            )
        await cancel_and_wait(self.engine.clock, list(self._tasks), "drills")
        for rec in self.pending():
            if rec.action in FAULTS and rec.detected_after_s is None:
                why = f"{rec.target} was never marked failed"
            elif rec.action == "rolling-update":
                why = "the rolling update had not finished"
            else:
                why = f"{len(rec.pending)} of {len(rec.held)} messages not handled"
            self._finish(rec, FAIL, f"{why} by the end of the run")
