"""Drills: faults and operator actions on a running engine, measured and judged.

A drill is fired by the workload's timeline (scripted) or by an operator
(interactive); either way it returns a `DrillRecord` that fills in as the
engine reacts. For kill and hang, detection is the time from the fault until
the consumer is marked failed, and recovery the time until every message it
held was handled elsewhere (acked by another consumer, or dead-lettered).

On a shared broker another worker of the fleet may be the one that handles
them, out of sight of this process's ledger: while a drill waits, the broker
is asked where its messages are. Every judged drill has a deadline (its
limits, or DEFAULT_DEADLINE): past it, it fails with the reason, never stays
pending for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ccdash.aio import cancel_and_wait, run_within
from ccdash.engine import BALANCERS, LIVE_STATES, Engine, Event, EventKind, Handler, Kind, Level
from ccdash.hints import did_you_mean
from ccdash.scenario.errors import ScenarioError
from ccdash.scenario.ledger import Ledger, Tap
from ccdash.scenario.model import TARGETS, Scenario, drill_label
from ccdash.scenario.simulated import Simulation

if TYPE_CHECKING:
    from ccdash.clock import TimerHandle

DRILL_ACTIONS = ("kill", "hang", "slow", "poison", "burst", "scale", "balancer", "rolling-update")
FAULTS = ("kill", "hang")  # the drills whose detection and recovery are judged

PENDING = "pending"
PASS = "pass"
FAIL = "fail"
DONE = "done"  # an action without a judged outcome (scale, balancer, slow)
SKIPPED = "skipped"  # could not run (no such consumer, nobody to target)

DEFAULT_DEADLINE = 120.0  # seconds a judged drill without limits may take
FLEET_CHECK_EVERY = 0.5  # seconds between asking a shared broker where waited ids are
FLEET_ASK_DEADLINE = 10.0  # seconds one such question may take


class DrillEvent(Kind):
    """What drills report through the engine's event log (its listeners see them)."""

    FIRED = "drill-fired", Level.WARNING, "a drill fired (kill, hang, poison, ...)"
    PASS = "drill-pass", Level.WARNING, "a drill's recovery met its limits"
    FAIL = "drill-fail", Level.WARNING, "a drill failed (too slow, or something unhandled)"
    DONE = "drill-done", Level.WARNING, "an action drill (scale, balancer, slow) was done"
    SKIPPED = "drill-skipped", Level.WARNING, "a drill could not run (no such consumer)"


@dataclass(eq=False)
class DrillRecord:
    """One drill as it happened; times are seconds after the fault (None: not yet)."""

    action: str
    requested: str  # busiest | idlest | random | a consumer id | "" for pool-wide drills
    at: float  # seconds since the run started
    name: str = ""
    source: str = "interactive"  # or "scheduled"
    target: str | None = None  # the consumer it hit
    params: dict[str, Any] = field(default_factory=dict)
    held: tuple[str, ...] = ()  # message ids the consumer held (or the drill injected)
    detected_after_s: float | None = None
    recovered_after_s: float | None = None
    replaced_after_s: float | None = None
    verdict: str = PENDING
    detail: str = ""
    max_detection_s: float | None = None
    max_recovery_s: float | None = None
    fired_at: float = 0.0  # engine clock time
    pending: set[str] = field(default_factory=set, repr=False)
    handled_at: float | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-able data."""
        return {
            "name": self.name, "action": self.action, "source": self.source,
            "at": round(self.at, 3), "requested": self.requested, "target": self.target,
            "params": {k: v for k, v in self.params.items() if v is not None},
            "held": len(self.held),
            "detected_after_s": _r(self.detected_after_s),
            "recovered_after_s": _r(self.recovered_after_s),
            "replaced_after_s": _r(self.replaced_after_s),
            "max_detection_s": self.max_detection_s, "max_recovery_s": self.max_recovery_s,
            "verdict": self.verdict, "detail": self.detail,
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


class DrillHost(Protocol):
    """The run as the drills see it (the Workload implements it)."""

    engine: Engine
    scenario: Scenario
    ledger: Ledger
    shared_url: str | None  # a shared broker's URL: other workers finish messages too

    def elapsed(self) -> float:
        """Seconds since the run started."""
        ...

    def emit(self, kind: str, message: str, *, source: str = ...,
             at: float | None = ..., fields: dict[str, Any] | None = ...) -> None:
        """Record an event of the run."""
        ...

    def after(self, seconds: float, fn: Callable[[], None]) -> None:
        """Call `fn` `seconds` from now (run time)."""
        ...

    async def publish_extra(self, *, poison: bool = ...) -> str | None:
        """Publish one message beyond the load; its id (None if the run ended first)."""
        ...


class DrillRunner:
    """Fires drills on the workload's engine and measures what follows."""

    def __init__(self, workload: DrillHost, rng: random.Random) -> None:
        self.workload = workload
        self.engine = workload.engine
        self.rng = rng
        self.results: list[DrillRecord] = []
        self._victims: dict[str, list[DrillRecord]] = {}  # consumer id -> its fault drills
        self._waiting: dict[str, list[DrillRecord]] = {}  # message id -> records awaiting it
        self.on_change: Callable[[], None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()  # rolling updates, fleet checks
        self._deadlines: list[TimerHandle] = []
        self._fleet_check: asyncio.Future[None] | None = None

    # -- firing -----------------------------------------------------------

    async def fire(self, action: str, target: str = "busiest", *, name: str = "",
                   source: str = "interactive", max_detection_s: float | None = None,
                   max_recovery_s: float | None = None, **params: Any) -> DrillRecord:
        """Run one drill now; returns its record (filled in further as the engine reacts)."""
        check_action(action)
        wl = self.workload
        slo = wl.scenario.slo
        rec = DrillRecord(
            action=action, requested=target if action in ("kill", "hang", "slow") else "",
            at=wl.elapsed(), name=name or drill_label(action, target, params), source=source,
            params=dict(params), fired_at=self.engine.clock.now(),
            max_detection_s=max_detection_s if max_detection_s is not None
            else slo.max_detection_s if action in FAULTS else None,
            max_recovery_s=max_recovery_s if max_recovery_s is not None
            else slo.max_recovery_s if action in FAULTS else None,
        )
        self.results.append(rec)
        try:
            await self._run(rec, target, params)
        except (KeyError, ValueError) as exc:  # the consumer went away meanwhile, bad value
            self._finish(rec, SKIPPED, str(exc).strip("'\""))
        if rec.verdict == PENDING:
            clock = self.engine.clock
            self._deadlines.append(clock.call_at(rec.fired_at + deadline_of(rec),
                                                 lambda: self._overdue(rec)))
        return rec

    def _fired(self, rec: DrillRecord) -> None:
        self.workload.emit(DrillEvent.FIRED, f"drill {rec.name}: {rec.detail}", source="drill",
                           fields={"action": rec.action, "target": rec.target})

    async def _run(self, rec: DrillRecord, target: str, params: dict[str, Any]) -> None:
        eng = self.engine
        action = rec.action
        if action in ("kill", "hang", "slow"):
            cid = self.pick(target)
            if cid is None:
                self._finish(rec, SKIPPED, f"no running consumer matches {target!r}")
                return
            rec.target = cid
        if action in FAULTS:
            assert rec.target is not None
            rec.held = tuple(sorted(
                li.message_id for li in eng.broker.leases() if li.consumer_id == rec.target))
            # A message whose handler already returned is done, whatever happens to its
            # ack now: on a broker whose ack is a round trip (SQLite, Redis) the fault can
            # land while the ack is committing, and no one would ever handle it again.
            done = self.workload.ledger.done
            self._watch(rec, [mid for mid in rec.held if mid not in done])
            self._victims.setdefault(rec.target, []).append(rec)
            verb = "killed" if action == "kill" else "hung"
            n = len(rec.held)
            rec.detail = f"{verb} {rec.target} holding {n} message{'' if n == 1 else 's'}"
            self._fired(rec)
            if action == "kill":
                await eng.kill_consumer(rec.target)
            else:
                await eng.hang_consumer(rec.target)
            self._update(rec)
        elif action == "slow":
            assert rec.target is not None
            factor = float(params.get("factor") or 4.0)
            eng.slow_consumer(rec.target, factor)
            secs = params.get("for")
            if secs:
                self.workload.after(float(secs), self._restore_speed(rec.target))
            rec.detail = f"slowed {rec.target} x{factor:g}" + (f" for {secs:g} s" if secs else "")
            self._finish(rec, DONE, rec.detail)
        elif action in ("poison", "burst"):
            n = int(params.get("count") or (5 if action == "poison" else 200))
            what = "poison messages" if action == "poison" else "messages"
            rec.detail = f"published {n} {what}"
            self._fired(rec)
            ids: list[str] = []
            for _ in range(n):
                mid = await self.workload.publish_extra(poison=action == "poison")
                if mid is None:  # the run ended before the broker took it
                    rec.detail = f"published {len(ids)} of {n} {what}"
                    break
                ids.append(mid)
            rec.held = tuple(ids)
            # Some may be handled already (publishing can wait for a broker meanwhile).
            done = self.workload.ledger.done
            self._watch(rec, ids)
            for mid in ids:
                if mid in done:
                    self._handled(rec, mid, done[mid])
            self._update(rec)
        elif action == "scale":
            to = int(params["to"])
            before = len(eng.consumer_ids())
            size = await eng.scale_to(to, source="drill", reason=f"drill {rec.name}")
            self._finish(rec, DONE, f"pool {before} -> {size}")
        elif action == "balancer":
            name = str(params["balancer"])
            if name not in BALANCERS:
                raise ValueError(f"unknown balancer {name!r}")
            eng.set_balancer(name)
            self._finish(rec, DONE, f"balancer is now {name}")
        else:  # rolling-update: runs in the background, under load
            if eng.handler is None:
                raise ValueError("rolling-update needs a per-message handler (not batches)")
            version = str(params.get("version") or next_version(eng.version))
            handler = upgraded_handler(eng.handler, version, self.workload.ledger)
            demo = handler is not eng.handler
            rec.detail = f"rolling update to {version}" + (
                " (the demo's next simulated handler)" if demo else " (same handler)")
            self._fired(rec)
            update = eng.rolling_update(
                handler, max_unavailable=int(params.get("max_unavailable") or 1),
                version=version)
            task = asyncio.ensure_future(update)
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._rolled(rec, t))

    def _rolled(self, rec: DrillRecord, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if rec.verdict != PENDING:  # judged already (its deadline passed)
            return
        if task.cancelled():
            self._finish(rec, FAIL, "rolling update cancelled")
        elif task.exception() is not None:
            self._finish(rec, FAIL, f"rolling update failed: {task.exception()!r}")
        else:
            rec.recovered_after_s = self.engine.clock.now() - rec.fired_at
            self._finish(rec, PASS, f"every consumer now runs {task.result()}")

    def _restore_speed(self, cid: str) -> Callable[[], None]:
        def restore() -> None:
            if cid in self.engine.consumer_ids(include_draining=True):
                self.engine.slow_consumer(cid, 1.0)
        return restore

    def pick(self, target: str) -> str | None:
        """The consumer a target names: busiest, idlest, random, or an id (if it runs)."""
        snap = self.engine.snapshot(max_leases=0, max_dead=0)
        live = [c for c in snap.consumers if c.state in LIVE_STATES and not c.hung]
        if target not in TARGETS:
            return target if any(c.id == target for c in live) else None
        if not live:
            return None
        if target == "random":
            return self.rng.choice(live).id
        order = {c.id: i for i, c in enumerate(live)}  # oldest first breaks ties
        if target == "busiest":
            return max(live, key=lambda c: (c.in_flight, c.processed, -order[c.id])).id
        return min(live, key=lambda c: (c.in_flight, c.processed, order[c.id])).id

    # -- measuring --------------------------------------------------------

    def _watch(self, rec: DrillRecord, ids: Any) -> None:
        rec.pending = set(ids)
        for mid in rec.pending:
            self._waiting.setdefault(mid, []).append(rec)
        if self._waiting and self.workload.shared_url is not None and (
                self._fleet_check is None or self._fleet_check.done()):
            self._fleet_check = asyncio.ensure_future(self._check_fleet())
            self._tasks.add(self._fleet_check)
            self._fleet_check.add_done_callback(self._tasks.discard)

    async def _check_fleet(self) -> None:
        """While drills wait on a shared broker: ask it where their messages are."""
        me = asyncio.current_task()
        while self._waiting and (me is None or not me.cancelling()):
            await self.engine.clock.sleep(FLEET_CHECK_EVERY)
            with contextlib.suppress(Exception):  # a Redis hiccup: ask again next time
                await run_within(self.engine.clock, self.ask_fleet(), FLEET_ASK_DEADLINE,
                                 "asking the fleet")

    async def ask_fleet(self) -> None:
        """Settle waited ids the shared broker no longer holds (acked by some worker of
        the fleet) or holds dead; a no-op without a shared broker."""
        from ccdash.fleet.settle import locate

        url, waiting = self.workload.shared_url, self.waiting_ids()
        if url is None or not waiting:
            return
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
                await run_within(self.engine.clock, self.ask_fleet(), FLEET_ASK_DEADLINE,
                                 "asking the fleet")
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
            why = (f"{len(left)} of {len(rec.held)} messages not handled by any worker "
                   f"({', '.join(left[:3])}{', ...' if len(left) > 3 else ''})")
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
                late.append(f"detected after {rec.detected_after_s:.2f} s "
                            f"(limit {rec.max_detection_s:g} s)")
            if rec.max_recovery_s is not None and rec.recovered_after_s > rec.max_recovery_s:
                late.append(f"recovered after {rec.recovered_after_s:.2f} s "
                            f"(limit {rec.max_recovery_s:g} s)")
            self._finish(rec, FAIL if late else PASS, "; ".join(late) or rec.detail)
        elif rec.action in ("poison", "burst") and not rec.pending:
            rec.recovered_after_s = max(0.0, (rec.handled_at or rec.fired_at) - rec.fired_at)
            self._finish(rec, PASS, rec.detail + (
                ", all dead-lettered or handled" if rec.action == "poison" else ", all handled"))

    def _finish(self, rec: DrillRecord, verdict: str, detail: str) -> None:
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
            text = f"drill {rec.name}: {verdict.upper()}" + (f" ({', '.join(times)})"
                                                              if times else "")
            if verdict != PASS or not times:
                text += f": {detail}"
        self.workload.emit(DrillEvent(f"drill-{verdict}"), text, source="drill",
                           fields={"action": rec.action, "target": rec.target})
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
            await run_within(self.engine.clock, self.ask_fleet(), FLEET_ASK_DEADLINE,
                             "asking the fleet")
        await cancel_and_wait(self.engine.clock, list(self._tasks), "drills")
        for rec in self.pending():
            if rec.action in FAULTS and rec.detected_after_s is None:
                why = f"{rec.target} was never marked failed"
            elif rec.action == "rolling-update":
                why = "the rolling update had not finished"
            else:
                why = f"{len(rec.pending)} of {len(rec.held)} messages not handled"
            self._finish(rec, FAIL, f"{why} by the end of the run")


def deadline_of(rec: DrillRecord) -> float:
    """Seconds after the fault by which a drill must be judged: its longest limit."""
    limits = [x for x in (rec.max_detection_s, rec.max_recovery_s) if x is not None]
    return max(limits) if limits else DEFAULT_DEADLINE


def next_version(version: str) -> str:
    """v1 -> v2 (as the engine numbers versions when none is given)."""
    digits = version.lstrip("v")
    return f"v{int(digits) + 1}" if digits.isdigit() else f"{version}+1"


def upgraded_handler(handler: Handler, version: str, ledger: Ledger) -> Handler:
    """What a rolling update installs: the simulated handler's next version (tapped for
    the loss checker); a handler of your own stays itself, only relabelled."""
    inner = handler.inner if isinstance(handler, Tap) else handler
    sim = getattr(inner, "__self__", None)
    if isinstance(sim, Simulation):
        return Tap(sim.upgraded(version).handle, ledger)
    return handler


def check_action(action: str) -> None:
    """ScenarioError unless `action` is a drill the engine can run."""
    if action in DRILL_ACTIONS:
        return
    raise ScenarioError(f"unknown drill action {action!r}{did_you_mean(action, DRILL_ACTIONS)}; "
                        f"valid: {', '.join(DRILL_ACTIONS)}")
