"""Reading scenario files: TOML in, a validated `Scenario` out, or a ScenarioError
naming the file, the line, the field and what was expected."""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path as FsPath
from typing import Any

from ccdash.engine import BALANCERS, ConfigError, EngineConfig
from ccdash.engine.rules import (
    COMPARISONS,
    METRICS,
    SEVERITIES,
    AlertRule,
    RuleError,
    default_rules,
)
from ccdash.hints import closest, did_you_mean
from ccdash.scenario.drill_record import DRILL_ACTIONS
from ccdash.scenario.errors import ScenarioError
from ccdash.scenario.locate import KeyLocator, Path, dotted
from ccdash.scenario.model import (
    ARRIVALS,
    LATENCIES,
    SHAPES,
    TARGETS,
    DrillSpec,
    LoadSpec,
    MixEntry,
    Scenario,
    SloSpec,
)
from ccdash.scenario.simulated import HandlerSpec

BUILTIN_DIR = FsPath(__file__).resolve().parent / "builtin"
MAX_RATE = 50_000.0  # msg/s; beyond this the simulated workload is not meaningful
CONSUMER_ID = re.compile(r"^c[1-9][0-9]{0,8}$")
MAX_DIGITS = 4300  # Python's limit on int() of a decimal string
MAX_FILE = 1024 * 1024  # bytes; the built-in scenarios are about 2 KiB

SECTIONS = ("scenario", "engine", "load", "handler", "drills", "alerts", "slo")
SCENARIO_KEYS = ("name", "description", "duration", "seed", "drain_timeout")
ENGINE_ELSEWHERE = {
    "seed": "set the seed in [scenario]",
    "alert_rules": "define alert rules as [[alerts]] tables",
    "latency_slo": "set max_latency_p99_ms in [slo]; it becomes the engine's latency SLO",
}
ENGINE_KEYS = tuple(f.name for f in dataclasses.fields(EngineConfig)
                    if f.name not in ENGINE_ELSEWHERE)
ALERT_KEYS = ("name", "metric", "op", "threshold", "for", "severity", "message")
LOAD_COMMON = ("shape", "rate", "arrivals", "mix")
LOAD_BY_SHAPE = {
    "steady": (),
    "ramp": ("peak", "ramp_up", "ramp_down"),
    "burst": ("burst_rate", "burst_at", "burst_for", "burst_every"),
    "sine": ("amplitude", "period"),
}
MIX_KEYS = ("type", "share", "priority")
HANDLER_COMMON = ("latency", "error_rate", "poison_rate", "slow", "per_item_ms")
HANDLER_BY_LATENCY = {
    "constant": ("ms",),
    "uniform": ("min_ms", "max_ms"),
    "lognormal": ("median_ms", "p99_ms"),
}
DRILL_COMMON = ("at", "action", "name")
DRILL_BY_ACTION: dict[str, tuple[str, ...]] = {
    "kill": ("target", "max_detection_s", "max_recovery_s"),
    "hang": ("target", "max_detection_s", "max_recovery_s"),
    "slow": ("target", "factor", "for"),
    "poison": ("count",),
    "burst": ("count",),
    "scale": ("to",),
    "balancer": ("balancer",),
    "rolling-update": ("version", "max_unavailable"),
}
SLO_KEYS = tuple(f.name for f in dataclasses.fields(SloSpec))


def builtin_names() -> list[str]:
    """Names of the scenarios shipped inside the package (`default`, `failover-drill`, ...)."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def resolve_path(path: str | FsPath | None) -> FsPath:
    """A scenario path; None is the default scenario, a bare name a built-in one."""
    if path is None:
        return BUILTIN_DIR / "default.toml"
    p = FsPath(path)
    if not p.exists() and p.parent == FsPath() and (BUILTIN_DIR / f"{p.stem}.toml").exists() \
            and p.suffix in ("", ".toml"):
        return BUILTIN_DIR / f"{p.stem}.toml"
    return p


def load_scenario(path: str | FsPath | None = None) -> Scenario:
    """Read and validate a scenario file (None: the default demo scenario)."""
    p = resolve_path(path)
    shown = str(path) if path is not None else f"{p.name} (built in)"
    if p.is_dir():
        raise ScenarioError("is a directory, expected a .toml scenario file", file=shown)
    if p.exists() and not p.is_file():  # /dev/zero, a FIFO: reading would never end
        raise ScenarioError("not a regular file, expected a .toml scenario file", file=shown)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_FILE + 1)
        if len(raw) > MAX_FILE:
            raise ScenarioError(f"larger than {MAX_FILE // 1024} KiB; a scenario is a short "
                                f"TOML file", file=shown)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        close = closest(p.stem, builtin_names())
        hint = f" (did you mean the built-in scenario {close!r}?)" if close else ""
        raise ScenarioError(f"no such file{hint}", file=shown) from None
    except OSError as exc:
        raise ScenarioError(f"cannot read it: {exc.strerror or exc}", file=shown) from None
    except UnicodeDecodeError:
        raise ScenarioError("not UTF-8 text (is it a TOML file?)", file=shown) from None
    return parse_scenario(text, file=shown, default_name=p.stem)


def parse_scenario(text: str, *, file: str = "<scenario>", default_name: str = "scenario") \
        -> Scenario:
    """Validate TOML text as a scenario."""
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    try:
        data = tomllib.loads(text)
        return _Reader(data, text, file).scenario(default_name)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = int(m.group(1)) if m else None
        msg = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", msg)
        raise ScenarioError(f"invalid TOML: {msg}", file=file, line=line) from None
    except RecursionError:
        raise ScenarioError("invalid TOML: arrays or tables nested too deeply",
                            file=file) from None
    except ValueError as exc:  # an integer too long for int() (more than 4300 digits)
        if isinstance(exc, ScenarioError):
            raise
        m = re.search(r"[0-9_]{" + str(MAX_DIGITS) + ",}", text)
        line = text.count("\n", 0, m.start()) + 1 if m else None
        raise ScenarioError(f"invalid TOML: a number with more than {MAX_DIGITS} digits",
                            file=file, line=line) from None


def _kind(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


class _Reader:
    """Walks the parsed TOML, checking each value where it is read."""

    def __init__(self, data: dict[str, Any], text: str, file: str) -> None:
        self.data = data
        self.file = file
        self.where = KeyLocator(text)
        self.duration = 0.0
        self.top_id = 0  # highest consumer id the run can reach (0: any, autoscaled)

    def fail(self, path: Path, problem: str) -> ScenarioError:
        return ScenarioError(problem, file=self.file, line=self.where.line_of(path),
                             field=dotted(path) or None)

    # -- generic checks ------------------------------------------------------

    def finite(self, value: Any, path: Path) -> None:
        """TOML allows inf and nan; no setting does."""
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(path, f"expected a finite number, got {value}")
        if isinstance(value, dict):
            for k, v in value.items():
                self.finite(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.finite(v, (*path, i) if isinstance(v, dict) else path)

    def table(self, path: Path, value: Any = None) -> dict[str, Any]:
        v = self.data.get(str(path[0]), {}) if value is None else value
        if not isinstance(v, dict):
            raise self.fail(path, f"expected a table [{dotted(path)}], got {_kind(v)}")
        return v

    def keys(self, table: dict[str, Any], path: Path, allowed: Iterable[str],
             elsewhere: dict[str, str] | None = None) -> None:
        allowed = list(allowed)
        for key in table:
            if key in allowed:
                continue
            if elsewhere and key in elsewhere:
                raise self.fail((*path, key), f"not used here ({elsewhere[key]})")
            raise self.fail((*path, key), f"unknown field {key!r}{did_you_mean(key, allowed)}; "
                                          f"valid fields: {', '.join(allowed)}")

    def number(self, t: dict[str, Any], key: str, path: Path, default: Any, *,
               ge: float | None = None, gt: float | None = None, le: float | None = None,
               integer: bool = False, unit: str = "") -> Any:
        if key not in t:
            return default
        v, p = t[key], (*path, key)
        want = "an integer" if integer else "a number"
        bound = ""
        if ge is not None:
            bound = f" >= {ge:g}"
        if gt is not None:
            bound = f" > {gt:g}"
        if le is not None:
            bound += f" and <= {le:g}" if bound else f" <= {le:g}"
        expected = f"expected {want}{bound}{unit}"
        if isinstance(v, bool) or not isinstance(v, int | float) or \
                (integer and not isinstance(v, int)):
            raise self.fail(p, f"{expected}, got {_kind(v)} {v!r}")
        if (ge is not None and v < ge) or (gt is not None and v <= gt) or \
                (le is not None and v > le):
            raise self.fail(p, f"{expected}, got {v!r}")
        return v if integer else float(v)

    def string(self, t: dict[str, Any], key: str, path: Path, default: str | None,
               choices: Iterable[str] | None = None, what: str = "") -> Any:
        if key not in t:
            return default
        v, p = t[key], (*path, key)
        if not isinstance(v, str):
            raise self.fail(p, f"expected a string, got {_kind(v)} {v!r}")
        if choices is not None:
            choices = list(choices)
            if v not in choices:
                raise self.fail(p, f"unknown {what or key} {v!r}{did_you_mean(v, choices)}; "
                                   f"valid: {', '.join(choices)}")
        return v

    def span(self, t: dict[str, Any], key: str, path: Path) -> tuple[float, float] | None:
        if key not in t:
            return None
        v, p = t[key], (*path, key)
        if not (isinstance(v, list) and len(v) == 2 and all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in v)):
            raise self.fail(p, f"expected [start, end] in seconds, got {v!r}")
        a, b = float(v[0]), float(v[1])
        if not 0 <= a < b <= self.duration:
            raise self.fail(p, f"expected 0 <= start < end <= duration ({self.duration:g} s), "
                               f"got [{a:g}, {b:g}]")
        return a, b

    # -- sections -------------------------------------------------------------

    def scenario(self, default_name: str) -> Scenario:
        self.finite(self.data, ())
        for key in self.data:
            if key not in SECTIONS:
                raise self.fail((key,), f"unknown section [{key}]{did_you_mean(key, SECTIONS)}; "
                                        f"valid sections: {', '.join(SECTIONS)}")
        s = self.table(("scenario",))
        self.keys(s, ("scenario",), SCENARIO_KEYS)
        name = self.string(s, "name", ("scenario",), default_name)
        description = self.string(s, "description", ("scenario",), "")
        self.duration = self.number(s, "duration", ("scenario",), 20.0, gt=0, le=86_400,
                                    unit=" seconds")
        seed = self.number(s, "seed", ("scenario",), None, integer=True)
        drain = self.number(s, "drain_timeout", ("scenario",), 15.0, gt=0, le=3600,
                            unit=" seconds")
        engine = self.engine()
        load = self.load()
        handler = self.handler()
        drills = self.drills(engine)
        self.check_slow_ids(handler)
        slo = self.slo(load)
        engine = self.alerts(engine, slo)
        return Scenario(name=name, duration=self.duration, engine=engine, load=load,
                        handler=handler, drills=drills, slo=slo, description=description,
                        seed=seed, drain_timeout=drain, path=self.file)

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
                    raise self.fail((*path, key), f"expected true or false, got {_kind(v)} {v!r}")
                values[key] = v
            elif typ.startswith("str"):
                values[key] = self.string(t, key, path, None,
                                          BALANCERS if key == "balancer" else None, key)
            elif typ.startswith("int"):
                values[key] = self.number(t, key, path, None, integer=True,
                                          unit=" (or leave it out)" if optional else "")
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
        owners = {k: f"only shape {s!r} uses it; this load is {shape!r}"
                  for s, ks in LOAD_BY_SHAPE.items() for k in ks}
        self.keys(t, path, (*LOAD_COMMON, *LOAD_BY_SHAPE[shape]), owners)
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
                raise self.fail((*path, "ramp_down"), f"starts at {down[0]:g} s, before "
                                f"ramp_up ends ({up[1]:g} s)")
        elif shape == "burst":
            if "burst_rate" not in t or "burst_at" not in t or "burst_for" not in t:
                raise self.fail(path, "shape 'burst' needs burst_rate, burst_at and burst_for")
            kw["burst_rate"] = self.number(t, "burst_rate", path, 0.0, ge=0, le=MAX_RATE,
                                           unit=unit)
            kw["burst_at"] = self.number(t, "burst_at", path, 0.0, ge=0, unit=" seconds")
            if kw["burst_at"] >= self.duration:
                raise self.fail((*path, "burst_at"), f"{kw['burst_at']:g} s is past the end "
                                f"of the run (duration {self.duration:g} s)")
            kw["burst_for"] = self.number(t, "burst_for", path, 0.0, gt=0, unit=" seconds")
            kw["burst_every"] = self.number(t, "burst_every", path, None, gt=kw["burst_for"],
                                            unit=" seconds (longer than burst_for)")
        elif shape == "sine":
            kw["amplitude"] = self.number(t, "amplitude", path, 0.0, ge=0, le=rate,
                                          unit=" (at most rate, or the rate would go negative)")
            kw["period"] = self.number(t, "period", path, 10.0, gt=0, unit=" seconds")
        kw["mix"] = self.mix(t.get("mix"), (*path, "mix"))
        return LoadSpec(**kw)

    def mix(self, value: Any, path: Path) -> tuple[MixEntry, ...]:
        if value is None:
            return (MixEntry(),)
        if not isinstance(value, list) or not value or \
                not all(isinstance(x, dict) for x in value):
            raise self.fail(path, "expected one or more [[load.mix]] tables "
                                  "(type, share, priority)")
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
        owners = {k: f"only latency {d!r} uses it; this handler is {latency!r}"
                  for d, ks in HANDLER_BY_LATENCY.items() for k in ks}
        self.keys(t, path, (*HANDLER_COMMON, *HANDLER_BY_LATENCY[latency]), owners)
        ms = " ms"
        kw: dict[str, Any] = {"latency": latency}
        if latency == "constant":
            kw["ms"] = self.number(t, "ms", path, 20.0, ge=0, le=600_000, unit=ms)
        elif latency == "uniform":
            kw["min_ms"] = lo = self.number(t, "min_ms", path, 5.0, ge=0, le=600_000, unit=ms)
            kw["max_ms"] = self.number(t, "max_ms", path, max(lo, 50.0), ge=lo, le=600_000,
                                       unit=" ms (not below min_ms)")
        else:
            kw["median_ms"] = med = self.number(t, "median_ms", path, 20.0, gt=0, le=600_000,
                                                unit=ms)
            kw["p99_ms"] = self.number(t, "p99_ms", path, max(med, 100.0), ge=med, le=600_000,
                                       unit=" ms (not below median_ms)")
        kw["error_rate"] = err = self.number(t, "error_rate", path, 0.0, ge=0, le=0.99)
        kw["poison_rate"] = self.number(t, "poison_rate", path, 0.0, ge=0, le=1.0 - err,
                                        unit=" (error_rate + poison_rate <= 1)")
        kw["per_item_ms"] = self.number(t, "per_item_ms", path, 1.0, ge=0, le=600_000, unit=ms)
        slow = t.get("slow", {})
        if not isinstance(slow, dict):
            raise self.fail((*path, "slow"), "expected a table of consumer id = factor, "
                                             "e.g. slow = { c2 = 3.0 }")
        pairs = []
        for cid in slow:
            if not CONSUMER_ID.match(cid):
                raise self.fail((*path, "slow", cid), f"expected a consumer id like c2, "
                                                      f"got {cid!r}")
            pairs.append((cid, self.number(slow, cid, (*path, "slow"), 1.0, ge=1.0, le=1000)))
        kw["slow"] = tuple(pairs)
        return HandlerSpec(**kw)

    def drills(self, engine: EngineConfig) -> tuple[DrillSpec, ...]:
        value = self.data.get("drills", [])
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            raise self.fail(("drills",), "expected [[drills]] tables (at, action, target, ...)")
        owners = {k: f"action {a!r} uses it, not this one"
                  for a, ks in DRILL_BY_ACTION.items() for k in ks}
        out, order = [], []
        for i, t in enumerate(value):
            p: Path = ("drills", i)
            if "action" not in t:
                raise self.fail(p, f"needs an action; valid: {', '.join(DRILL_ACTIONS)}")
            action = t["action"]
            action = self.string(t, "action", p, None, DRILL_ACTIONS, "drill action")
            self.keys(t, p, (*DRILL_COMMON, *DRILL_BY_ACTION[action]),
                      {k: v for k, v in owners.items() if k not in DRILL_BY_ACTION[action]})
            if "at" not in t:
                raise self.fail(p, "needs at = seconds into the run")
            at = self.number(t, "at", p, 0.0, ge=0, unit=" seconds")
            if at > self.duration:
                raise self.fail((*p, "at"), f"{at:g} s is past the end of the run "
                                            f"(duration {self.duration:g} s)")
            target = self.string(t, "target", p, "busiest")
            if target not in TARGETS and not CONSUMER_ID.match(target):
                raise self.fail((*p, "target"), f"unknown target {target!r}"
                                f"{did_you_mean(target, TARGETS)}; valid: "
                                f"{', '.join(TARGETS)} or a consumer id like c3")
            params = self.drill_params(t, p, action, engine)
            order.append(i)
            out.append(DrillSpec(
                at=at, action=action, target=target, name=self.string(t, "name", p, ""),
                params=params,
                max_detection_s=self.number(t, "max_detection_s", p, None, gt=0, unit=" s"),
                max_recovery_s=self.number(t, "max_recovery_s", p, None, gt=0, unit=" s"),
            ))
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
                    raise self.fail(("drills", i, "target"),
                                    f"no consumer {d.target!r} can exist at {d.at:g} s: the "
                                    f"run starts c1..c{engine.consumers} and adds at most "
                                    f"{top - engine.consumers} more by then; valid: "
                                    f"{', '.join(TARGETS)} or c1..c{top}")
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
                raise self.fail(("handler", "slow", cid),
                                f"no consumer {cid!r} exists in this run: valid ids are "
                                f"c1..c{self.top_id}")

    def drill_params(self, t: dict[str, Any], p: Path, action: str, engine: EngineConfig) \
            -> tuple[tuple[str, Any], ...]:
        if action == "slow":
            return (("factor", self.number(t, "factor", p, 4.0, gt=1, le=1000)),
                    ("for", self.number(t, "for", p, None, gt=0, unit=" seconds")))
        if action in ("poison", "burst"):
            default = 5 if action == "poison" else 200
            return (("count", self.number(t, "count", p, default, integer=True, ge=1,
                                          le=1_000_000)),)
        if action == "scale":
            if "to" not in t:
                raise self.fail(p, "action 'scale' needs to = number of consumers")
            return (("to", self.number(t, "to", p, 0, integer=True, ge=engine.min_consumers,
                                       le=engine.max_consumers,
                                       unit=" (within engine min_consumers and max_consumers)")),)
        if action == "balancer":
            if "balancer" not in t:
                raise self.fail(p, f"action 'balancer' needs balancer = one of "
                                   f"{', '.join(BALANCERS)}")
            return (("balancer", self.string(t, "balancer", p, None, BALANCERS, "balancer")),)
        if action == "rolling-update":
            return (("version", self.string(t, "version", p, None)),
                    ("max_unavailable", self.number(t, "max_unavailable", p, 1, integer=True,
                                                    ge=1, le=engine.max_consumers)))
        return ()

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
                raise self.fail(p, f"needs {', '.join(missing)} (a rule is name, metric, op, "
                                   f"threshold, and optionally for, severity, message)")
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
                    severity=self.string(t, "severity", p, "warning", SEVERITIES, "severity"),
                    message=self.string(t, "message", p, ""),
                )
            except RuleError as exc:  # a check the loader does not repeat
                raise self.fail(p, str(exc)) from None
            rules[name] = rule
        if not value and latency_slo is None:
            return engine
        try:
            return dataclasses.replace(engine, latency_slo=latency_slo,
                                       alert_rules=tuple(rules.values()) if value else None)
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
                raise self.fail((*bp, key), f"expected a priority of load.mix "
                                f"({', '.join(map(str, prios))}), got {key!r}")
            pairs.append((int(key), self.number(by, key, bp, 0.0, gt=0, unit=" ms")))
        kw["max_latency_p99_ms_by_priority"] = tuple(pairs)
        return SloSpec(**kw)
