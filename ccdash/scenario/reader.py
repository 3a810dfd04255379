"""Reading a whole scenario file, section by section: [scenario], [engine], [load],
[handler], [[drills]] (see drill_tables), [[alerts]] and [slo]."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ccdash.engine import BALANCERS, ConfigError, EngineConfig, Severity
from ccdash.engine.rules import (
    COMPARISONS,
    METRICS,
    SEVERITIES,
    AlertRule,
    RuleError,
    default_rules,
)
from ccdash.hints import did_you_mean
from ccdash.scenario.drill_tables import DrillTableReader
from ccdash.scenario.fields import TEXT_LIMIT, kind_of
from ccdash.scenario.locate import Path
from ccdash.scenario.model import ARRIVALS, LATENCIES, SHAPES, LoadSpec, MixEntry, Scenario, SloSpec
from ccdash.scenario.schema import (
    ALERT_KEYS,
    CONSUMER_ID,
    ENGINE_ELSEWHERE,
    ENGINE_KEYS,
    HANDLER_BY_LATENCY,
    HANDLER_COMMON,
    LOAD_BY_SHAPE,
    LOAD_COMMON,
    MAX_RATE,
    MIX_KEYS,
    SCENARIO_KEYS,
    SECTIONS,
    SLO_KEYS,
)
from ccdash.scenario.simulated import HandlerSpec


class ScenarioReader(DrillTableReader):
    """Reads the parsed TOML of a scenario file into a validated `Scenario`."""

    def scenario(self, default_name: str) -> Scenario:
        self.finite(self.data, ())
        for key in self.data:
            if key not in SECTIONS:
                raise self.fail(
                    (key,),
                    f"unknown section [{key}]{did_you_mean(key, SECTIONS)}; "
                    f"valid sections: {', '.join(SECTIONS)}",
                )
        s = self.table(("scenario",))
        self.keys(s, ("scenario",), SCENARIO_KEYS)
        name = self.string(s, "name", ("scenario",), default_name)
        description = self.string(s, "description", ("scenario",), "", limit=TEXT_LIMIT)
        self.duration = self.number(
            s, "duration", ("scenario",), 20.0, gt=0, le=86_400, unit=" seconds"
        )
        seed = self.number(s, "seed", ("scenario",), None, ge=0, le=2**63 - 1, integer=True)
        drain = self.number(s, "drain_timeout", ("scenario",), 15.0, gt=0, le=3600, unit=" seconds")
        engine = self.engine()
        load = self.load()
        handler = self.handler()
        drills = self.drills(engine)
        self.check_slow_ids(handler)
        slo = self.slo(load)
        engine = self.alerts(engine, slo)
        return Scenario(
            name=name,
            duration=self.duration,
            engine=engine,
            load=load,
            handler=handler,
            drills=drills,
            slo=slo,
            description=description,
            seed=seed,
            drain_timeout=drain,
            path=self.file,
        )

    def engine(self) -> EngineConfig:
        path: Path = ("engine",)
        t = self.table(path)
        self.keys(t, path, ENGINE_KEYS, ENGINE_ELSEWHERE)
        values: dict[str, Any] = {}
        types = {f.name: str(f.type) for f in dataclasses.fields(EngineConfig)}
        for key, v in t.items():
            typ = types[key]
            optional = "None" in typ
            if typ.startswith("bool"):
                if not isinstance(v, bool):
                    raise self.fail((*path, key), f"expected true or false, got {kind_of(v)} {v!r}")
                values[key] = v
            elif typ.startswith("str"):
                values[key] = self.string(
                    t, key, path, None, BALANCERS if key == "balancer" else None, key
                )
            elif typ.startswith("int"):
                values[key] = self.number(
                    t, key, path, None, integer=True, unit=" (or leave it out)" if optional else ""
                )
            else:
                values[key] = self.number(t, key, path, None)
        try:
            return EngineConfig(**values)
        except ConfigError as exc:
            msg = str(exc)
            first = msg.split()[0] if msg else ""
            field_path: Path = (*path, first) if first in ENGINE_KEYS else path
            raise self.fail(field_path, msg) from None

    def load(self) -> LoadSpec:
        path: Path = ("load",)
        t = self.table(path)
        shape = self.string(t, "shape", path, "steady", SHAPES, "load shape")
        self.variant_keys(t, path, LOAD_COMMON, LOAD_BY_SHAPE, shape, "shape")
        unit = " msg/s"
        rate = self.number(t, "rate", path, 50.0, ge=0, le=MAX_RATE, unit=unit)
        kw: dict[str, Any] = {"shape": shape, "rate": rate}
        kw["arrivals"] = self.string(t, "arrivals", path, "poisson", ARRIVALS, "arrivals")
        if shape == "ramp":
            if "peak" not in t or "ramp_up" not in t:
                raise self.fail(path, "shape 'ramp' needs peak and ramp_up = [start, end]")
            kw["peak"] = self.number(t, "peak", path, 0.0, ge=0, le=MAX_RATE, unit=unit)
            kw["ramp_up"] = up = self.span(t, "ramp_up", path)
            kw["ramp_down"] = down = self.span(t, "ramp_down", path)
            if up and down and down[0] < up[1]:
                raise self.fail(
                    (*path, "ramp_down"),
                    f"starts at {down[0]:g} s, before ramp_up ends ({up[1]:g} s)",
                )
        elif shape == "burst":
            if "burst_rate" not in t or "burst_at" not in t or "burst_for" not in t:
                raise self.fail(path, "shape 'burst' needs burst_rate, burst_at and burst_for")
            kw["burst_rate"] = self.number(t, "burst_rate", path, 0.0, ge=0, le=MAX_RATE, unit=unit)
            kw["burst_at"] = self.number(t, "burst_at", path, 0.0, ge=0, unit=" seconds")
            if kw["burst_at"] >= self.duration:
                raise self.fail(
                    (*path, "burst_at"),
                    f"{kw['burst_at']:g} s is past the end "
                    f"of the run (duration {self.duration:g} s)",
                )
            kw["burst_for"] = self.number(t, "burst_for", path, 0.0, gt=0, unit=" seconds")
            kw["burst_every"] = self.number(
                t,
                "burst_every",
                path,
                None,
                gt=kw["burst_for"],
                unit=" seconds (longer than burst_for)",
            )
        elif shape == "sine":
            kw["amplitude"] = self.number(
                t,
                "amplitude",
                path,
                0.0,
                ge=0,
                le=rate,
                unit=" (at most rate, or the rate would go negative)",
            )
            kw["period"] = self.number(t, "period", path, 10.0, gt=0, unit=" seconds")
        kw["mix"] = self.mix(t.get("mix"), (*path, "mix"))
        return LoadSpec(**kw)

    def mix(self, value: Any, path: Path) -> tuple[MixEntry, ...]:
        if value is None:
            return (MixEntry(),)
        if not isinstance(value, list) or not value or not all(isinstance(x, dict) for x in value):
            raise self.fail(
                path, "expected one or more [[load.mix]] tables (type, share, priority)"
            )
        out = []
        for i, entry in enumerate(value):
            p: Path = (*path, i)
            self.keys(entry, p, MIX_KEYS)
            typ = self.string(entry, "type", p, f"type{i + 1}")
            share = self.number(entry, "share", p, 1.0, gt=0)
            prio = self.number(entry, "priority", p, 0, integer=True, ge=-1000, le=1000)
            out.append(MixEntry(typ, share, prio))
        return tuple(out)

    def handler(self) -> HandlerSpec:
        path: Path = ("handler",)
        t = self.table(path)
        latency = self.string(t, "latency", path, "lognormal", LATENCIES, "latency distribution")
        self.variant_keys(t, path, HANDLER_COMMON, HANDLER_BY_LATENCY, latency, "latency")
        ms = " ms"
        kw: dict[str, Any] = {"latency": latency}
        if latency == "constant":
            kw["ms"] = self.number(t, "ms", path, 20.0, ge=0, le=600_000, unit=ms)
        elif latency == "uniform":
            kw["min_ms"] = lo = self.number(t, "min_ms", path, 5.0, ge=0, le=600_000, unit=ms)
            kw["max_ms"] = self.number(
                t, "max_ms", path, max(lo, 50.0), ge=lo, le=600_000, unit=" ms (not below min_ms)"
            )
        else:
            kw["median_ms"] = med = self.number(
                t, "median_ms", path, 20.0, gt=0, le=600_000, unit=ms
            )
            kw["p99_ms"] = self.number(
                t,
                "p99_ms",
                path,
                max(med, 100.0),
                ge=med,
                le=600_000,
                unit=" ms (not below median_ms)",
            )
        kw["error_rate"] = err = self.number(t, "error_rate", path, 0.0, ge=0, le=0.99)
        kw["poison_rate"] = self.number(
            t, "poison_rate", path, 0.0, ge=0, le=1.0 - err, unit=" (error_rate + poison_rate <= 1)"
        )
        kw["per_item_ms"] = self.number(t, "per_item_ms", path, 1.0, ge=0, le=600_000, unit=ms)
        slow = t.get("slow", {})
        if not isinstance(slow, dict):
            raise self.fail(
                (*path, "slow"),
                "expected a table of consumer id = factor, e.g. slow = { c2 = 3.0 }",
            )
        pairs = []
        for cid in slow:
            if not CONSUMER_ID.match(cid):
                raise self.fail(
                    (*path, "slow", cid), f"expected a consumer id like c2, got {cid!r}"
                )
            pairs.append((cid, self.number(slow, cid, (*path, "slow"), 1.0, ge=1.0, le=1000)))
        kw["slow"] = tuple(pairs)
        return HandlerSpec(**kw)

    def alerts(self, engine: EngineConfig, slo: SloSpec) -> EngineConfig:
        """[[alerts]] rules on top of the built-in ones (a rule of the same name replaces
        the built-in); the p99 latency SLO becomes the engine's latency SLO."""
        p99 = slo.max_latency_p99_ms
        latency_slo = None if p99 is None else p99 / 1000
        value = self.data.get("alerts", [])
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            raise self.fail(("alerts",), f"expected [[alerts]] tables ({', '.join(ALERT_KEYS)})")
        rules = {r.name: r for r in default_rules(latency_slo)}
        names: set[str] = set()
        for i, t in enumerate(value):
            p: Path = ("alerts", i)
            self.keys(t, p, ALERT_KEYS)
            missing = [k for k in ("name", "metric", "op", "threshold") if k not in t]
            if missing:
                raise self.fail(
                    p,
                    f"needs {', '.join(missing)} (a rule is name, metric, op, "
                    f"threshold, and optionally for, severity, message)",
                )
            name = self.string(t, "name", p, None)
            if not name.strip():
                raise self.fail((*p, "name"), "expected a non-empty name")
            if name in names:
                raise self.fail((*p, "name"), f"another [[alerts]] rule is already named {name!r}")
            names.add(name)
            try:
                rule = AlertRule(
                    name=name,
                    metric=self.string(t, "metric", p, None, METRICS, "metric"),
                    op=self.string(t, "op", p, None, COMPARISONS, "comparison"),
                    threshold=self.number(t, "threshold", p, None),
                    for_s=self.number(t, "for", p, 0.0, ge=0, unit=" seconds"),
                    severity=self.string(
                        t, "severity", p, Severity.WARNING, SEVERITIES, "severity"
                    ),
                    message=self.string(t, "message", p, "", limit=TEXT_LIMIT),
                )
            except RuleError as exc:  # a check the loader does not repeat
                raise self.fail(p, str(exc)) from None
            rules[name] = rule
        if not value and latency_slo is None:
            return engine
        try:
            return dataclasses.replace(
                engine,
                latency_slo=latency_slo,
                alert_rules=tuple(rules.values()) if value else None,
            )
        except ConfigError as exc:
            raise self.fail(("alerts",) if value else ("slo",), str(exc)) from None

    def slo(self, load: LoadSpec) -> SloSpec:
        path: Path = ("slo",)
        t = self.table(path)
        self.keys(t, path, SLO_KEYS)
        kw: dict[str, Any] = {}
        for key in ("min_throughput_per_s",):
            kw[key] = self.number(t, key, path, None, ge=0, unit=" msg/s")
        for key in ("max_latency_p50_ms", "max_latency_p95_ms", "max_latency_p99_ms"):
            kw[key] = self.number(t, key, path, None, gt=0, unit=" ms")
        for key in ("max_detection_s", "max_recovery_s"):
            kw[key] = self.number(t, key, path, None, gt=0, unit=" seconds")
        for key in ("max_dead_lettered", "max_duplicates"):
            kw[key] = self.number(t, key, path, None, integer=True, ge=0)
        if "drained" in t:
            if not isinstance(t["drained"], bool):
                raise self.fail((*path, "drained"), f"expected true or false, got {t['drained']!r}")
            kw["drained"] = t["drained"]
        by = t.get("max_latency_p99_ms_by_priority", {})
        bp: Path = (*path, "max_latency_p99_ms_by_priority")
        if not isinstance(by, dict):
            raise self.fail(bp, 'expected a table of priority = ms, e.g. { "9" = 250 }')
        prios = sorted({m.priority for m in load.mix})
        pairs = []
        for key in by:
            if not re.fullmatch(r"-?\d+", key) or int(key) not in prios:
                raise self.fail(
                    (*bp, key),
                    f"expected a priority of load.mix ({', '.join(map(str, prios))}), got {key!r}",
                )
            pairs.append((int(key), self.number(by, key, bp, 0.0, gt=0, unit=" ms")))
        kw["max_latency_p99_ms_by_priority"] = tuple(pairs)
        return SloSpec(**kw)
