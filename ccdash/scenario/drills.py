"""Firing drills: faults and operator actions on a running engine.

A drill is fired by the workload's timeline (scripted) or by an operator
(interactive); either way it returns a `DrillRecord` that fills in as the
engine reacts: `DrillJudge` (drill_judge) measures detection and recovery and
gives the verdict. Every judged drill has a deadline (its limits, or
DEFAULT_DEADLINE): past it, it fails with the reason, never stays pending for ever.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from ccdash.engine import BALANCERS, LIVE_STATES, DrillEvent, Handler, next_version
from ccdash.scenario.drill_judge import DrillHost, DrillJudge
from ccdash.scenario.drill_record import (
    DONE,
    DRILL_ACTIONS,
    FAIL,
    FAULTS,
    PASS,
    PENDING,
    SKIPPED,
    DrillRecord,
    check_action,
    deadline_of,
)
from ccdash.scenario.ledger import Ledger, Tap
from ccdash.scenario.model import TARGETS, drill_label
from ccdash.scenario.simulated import Simulation
from ccdash.text import counted


class DrillRunner(DrillJudge):
    """Fires drills on the workload's engine; what follows is measured by `DrillJudge`."""

    def __init__(self, workload: DrillHost, rng: random.Random) -> None:
        super().__init__(workload)
        self.rng = rng

    # -- firing -----------------------------------------------------------

    async def fire_named(self, action: str, target: str = "busiest", **params: Any) -> DrillRecord:
        """Fire a drill now: an action (kill, hang, ...) or a scenario drill by name."""
        spec = next((d for d in self.workload.scenario.drills if d.label == action), None)
        if spec is not None and action not in DRILL_ACTIONS:
            merged = {**dict(spec.params), **params}
            return await self.fire(
                spec.action,
                spec.target if target == "busiest" else target,
                name=spec.label,
                max_detection_s=spec.max_detection_s,
                max_recovery_s=spec.max_recovery_s,
                **merged,
            )
        check_action(action)
        return await self.fire(action, target, **params)

    async def fire(
        self,
        action: str,
        target: str = "busiest",
        *,
        name: str = "",
        source: str = "interactive",
        max_detection_s: float | None = None,
        max_recovery_s: float | None = None,
        **params: Any,
    ) -> DrillRecord:
        """Run one drill now; returns its record (filled in further as the engine reacts)."""
        check_action(action)
        wl = self.workload
        slo = wl.scenario.slo
        rec = DrillRecord(
            action=action,
            requested=target if action in ("kill", "hang", "slow") else "",
            at=wl.elapsed(),
            name=name or drill_label(action, target, params),
            source=source,
            params=dict(params),
            fired_at=self.engine.clock.now(),
            max_detection_s=max_detection_s
            if max_detection_s is not None
            else slo.max_detection_s
            if action in FAULTS
            else None,
            max_recovery_s=max_recovery_s
            if max_recovery_s is not None
            else slo.max_recovery_s
            if action in FAULTS
            else None,
        )
        self.results.append(rec)
        try:
            await self._run(rec, target, params)
        except (KeyError, ValueError) as exc:  # the consumer went away meanwhile, bad value
            self._finish(rec, SKIPPED, str(exc).strip("'\""))
        if rec.verdict == PENDING:
            clock = self.engine.clock
            self._deadlines.append(
                clock.call_at(rec.fired_at + deadline_of(rec), lambda: self._overdue(rec))
            )
        return rec

    def _fired(self, rec: DrillRecord) -> None:
        self.workload.emit(
            DrillEvent.FIRED,
            f"drill {rec.name}: {rec.detail}",
            source="drill",
            fields={"action": rec.action, "target": rec.target},
        )

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
            rec.held = tuple(
                sorted(li.message_id for li in eng.broker.leases() if li.consumer_id == rec.target)
            )
            # A message whose handler already returned is done, whatever happens to its
            # ack now: on a broker whose ack is a round trip (SQLite, Redis) the fault can
            # land while the ack is committing, and no one would ever handle it again.
            done = self.workload.ledger.done
            self._watch(rec, [mid for mid in rec.held if mid not in done])
            self._victims.setdefault(rec.target, []).append(rec)
            verb = "killed" if action == "kill" else "hung"
            n = len(rec.held)
            rec.detail = f"{verb} {rec.target} holding {counted(n, 'message')}"
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
                " (the demo's next simulated handler)" if demo else " (same handler)"
            )
            self._fired(rec)
            update = eng.rolling_update(
                handler, max_unavailable=int(params.get("max_unavailable") or 1), version=version
            )
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


def upgraded_handler(handler: Handler, version: str, ledger: Ledger) -> Handler:
    """What a rolling update installs: the simulated handler's next version (tapped for
    the loss checker); a handler of your own stays itself, only relabelled."""
    inner = handler.inner if isinstance(handler, Tap) else handler
    sim = getattr(inner, "__self__", None)
    if isinstance(sim, Simulation):
        return Tap(sim.upgraded(version).handle, ledger)
    return handler
