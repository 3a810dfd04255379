"""The fields a scenario file may have, section by section (the loader checks
against these; docs/gen_reference.py lists them in docs/reference.md)."""

from __future__ import annotations

import dataclasses
import re

from ccdash.engine import EngineConfig
from ccdash.scenario.model import SloSpec

MAX_RATE = 50_000.0  # msg/s; beyond this the simulated workload is not meaningful
CONSUMER_ID = re.compile(r"^c[1-9][0-9]{0,8}$")


SECTIONS = ("scenario", "engine", "load", "handler", "drills", "alerts", "slo")
SCENARIO_KEYS = ("name", "description", "duration", "seed", "drain_timeout")
ENGINE_ELSEWHERE = {
    "seed": "set the seed in [scenario]",
    "alert_rules": "define alert rules as [[alerts]] tables",
    "latency_slo": "set max_latency_p99_ms in [slo]; it becomes the engine's latency SLO",
}
ENGINE_KEYS = tuple(
    f.name for f in dataclasses.fields(EngineConfig) if f.name not in ENGINE_ELSEWHERE
)
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
