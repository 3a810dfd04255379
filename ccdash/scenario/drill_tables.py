"""Reading a scenario's [[drills]] tables, and checking that every consumer id a
drill or the handler's `slow` table names can exist in the run."""

from __future__ import annotations

from typing import Any

from ccdash.engine import BALANCERS, EngineConfig
from ccdash.hints import did_you_mean
from ccdash.scenario.drill_record import DRILL_ACTIONS
from ccdash.scenario.fields import FieldReader
from ccdash.scenario.locate import Path
from ccdash.scenario.model import TARGETS, DrillSpec
from ccdash.scenario.schema import CONSUMER_ID, DRILL_BY_ACTION, DRILL_COMMON
from ccdash.scenario.simulated import HandlerSpec

MAX_INJECTED = 1_000_000  # messages all the drills may publish at once (one may, too)


class DrillTableReader(FieldReader):
    """The [[drills]] part of the scenario reader."""

    def __init__(self, data: dict[str, Any], text: str, file: str) -> None:
        super().__init__(data, text, file)
        self.top_id = 0  # highest consumer id the run can reach (0: any, autoscaled)

    def drills(self, engine: EngineConfig) -> tuple[DrillSpec, ...]:
        value = self.data.get("drills", [])
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            raise self.fail(("drills",), "expected [[drills]] tables (at, action, target, ...)")
        owners = {
            k: f"action {a!r} uses it, not this one"
            for a, ks in DRILL_BY_ACTION.items()
            for k in ks
        }
        out, order = [], []
        injected = 0  # messages the bursts and poisons publish at once, kept till handled
        for i, t in enumerate(value):
            p: Path = ("drills", i)
            if "action" not in t:
                raise self.fail(p, f"needs an action; valid: {', '.join(DRILL_ACTIONS)}")
            action = t["action"]
            action = self.string(t, "action", p, None, DRILL_ACTIONS, "drill action")
            self.keys(
                t,
                p,
                (*DRILL_COMMON, *DRILL_BY_ACTION[action]),
                {k: v for k, v in owners.items() if k not in DRILL_BY_ACTION[action]},
            )
            if "at" not in t:
                raise self.fail(p, "needs at = seconds into the run")
            at = self.number(t, "at", p, 0.0, ge=0, unit=" seconds")
            if at > self.duration:
                raise self.fail(
                    (*p, "at"),
                    f"{at:g} s is past the end of the run (duration {self.duration:g} s)",
                )
            target = self.string(t, "target", p, "busiest")
            if target not in TARGETS and not CONSUMER_ID.match(target):
                raise self.fail(
                    (*p, "target"),
                    f"unknown target {target!r}"
                    f"{did_you_mean(target, TARGETS)}; valid: "
                    f"{', '.join(TARGETS)} or a consumer id like c3",
                )
            params = self.drill_params(t, p, action, engine)
            if action in ("poison", "burst"):
                injected += dict(params)["count"]
                if injected > MAX_INJECTED:
                    raise self.fail(
                        (*p, "count"),
                        f"the bursts and poisons up to here add up to {injected} messages; "
                        f"at most {MAX_INJECTED} in all (each is kept in memory until handled)",
                    )
            order.append(i)
            out.append(
                DrillSpec(
                    at=at,
                    action=action,
                    target=target,
                    name=self.string(t, "name", p, ""),
                    params=params,
                    max_detection_s=self.number(t, "max_detection_s", p, None, gt=0, unit=" s"),
                    max_recovery_s=self.number(t, "max_recovery_s", p, None, gt=0, unit=" s"),
                )
            )
        ranked = sorted(zip(out, order, strict=True), key=lambda pair: pair[0].at)
        self.top_id = self.check_pool_ids(engine, ranked)
        return tuple(d for d, _ in ranked)

    def check_pool_ids(self, engine: EngineConfig, ranked: list[tuple[DrillSpec, int]]) -> int:
        """A drill naming a consumer id must name one that can exist by then: the run
        starts c1..cN, and only failover replacements, scaling and rolling updates add
        ids (never reused). Returns the highest id possible by the end (None-like 0 when
        the autoscaler can add any number)."""
        if engine.autoscale:
            return 0
        top = engine.consumers
        for d, i in ranked:
            if CONSUMER_ID.match(d.target) and d.action in ("kill", "hang", "slow"):
                n = int(d.target[1:])
                if n > top:
                    raise self.fail(
                        ("drills", i, "target"),
                        f"no consumer {d.target!r} can exist at {d.at:g} s: the "
                        f"run starts c1..c{engine.consumers} and adds at most "
                        f"{top - engine.consumers} more by then; valid: "
                        f"{', '.join(TARGETS)} or c1..c{top}",
                    )
            if d.action in ("kill", "hang"):
                top += 1  # its replacement
            elif d.action == "scale":
                top += int(dict(d.params)["to"])
            elif d.action == "rolling-update":
                top += engine.max_consumers
        return top

    def check_slow_ids(self, handler: HandlerSpec) -> None:
        """`slow = { c9 = 3 }` must name a consumer the run can have."""
        for cid, _ in handler.slow:
            if self.top_id and int(cid[1:]) > self.top_id:
                raise self.fail(
                    ("handler", "slow", cid),
                    f"no consumer {cid!r} exists in this run: valid ids are c1..c{self.top_id}",
                )

    def drill_params(
        self, t: dict[str, Any], p: Path, action: str, engine: EngineConfig
    ) -> tuple[tuple[str, Any], ...]:
        if action == "slow":
            return (
                ("factor", self.number(t, "factor", p, 4.0, gt=1, le=1000)),
                ("for", self.number(t, "for", p, None, gt=0, unit=" seconds")),
            )
        if action in ("poison", "burst"):
            default = 5 if action == "poison" else 200
            return (
                ("count", self.number(t, "count", p, default, integer=True, ge=1, le=1_000_000)),
            )
        if action == "scale":
            if "to" not in t:
                raise self.fail(p, "action 'scale' needs to = number of consumers")
            return (
                (
                    "to",
                    self.number(
                        t,
                        "to",
                        p,
                        0,
                        integer=True,
                        ge=engine.min_consumers,
                        le=engine.max_consumers,
                        unit=" (within engine min_consumers and max_consumers)",
                    ),
                ),
            )
        if action == "balancer":
            if "balancer" not in t:
                raise self.fail(
                    p, f"action 'balancer' needs balancer = one of {', '.join(BALANCERS)}"
                )
            return (("balancer", self.string(t, "balancer", p, None, BALANCERS, "balancer")),)
        if action == "rolling-update":
            return (
                ("version", self.string(t, "version", p, None)),
                (
                    "max_unavailable",
                    self.number(
                        t, "max_unavailable", p, 1, integer=True, ge=1, le=engine.max_consumers
                    ),
                ),
            )
        return ()
