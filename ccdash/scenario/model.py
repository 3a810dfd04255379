"""What a scenario holds: engine settings, load shape, simulated handler, drills, SLOs."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ccdash.brokers.base import Broker
from ccdash.clock import Clock, MonotonicClock
from ccdash.engine import Engine, EngineConfig, Handler
from ccdash.scenario.ledger import BatchTap, Ledger, Tap
from ccdash.scenario.simulated import HandlerSpec, Simulation
from ccdash.text import counted

SHAPES = ("steady", "ramp", "burst", "sine")
ARRIVALS = ("poisson", "even")
LATENCIES = ("constant", "uniform", "lognormal")
TARGETS = ("busiest", "idlest", "random")


@dataclass(frozen=True, slots=True)
class MixEntry:
    """One kind of message in the load: its share of arrivals and its priority."""

    type: str = "order"
    share: float = 1.0
    priority: int = 0


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """The arrival rate over the run (msg/s), and what arrives."""

    shape: str = "steady"
    rate: float = 50.0  # steady rate; the base of ramp/burst; the mean of sine
    peak: float = 0.0  # ramp: the rate it ramps to
    ramp_up: tuple[float, float] = (0.0, 0.0)  # ramp: from rate to peak between these times
    ramp_down: tuple[float, float] | None = None  # ramp: back to rate between these times
    burst_rate: float = 0.0  # burst: the rate during a burst
    burst_at: float = 0.0
    burst_for: float = 0.0
    burst_every: float | None = None  # repeat the burst with this period
    amplitude: float = 0.0  # sine
    period: float = 10.0
    arrivals: str = "poisson"  # poisson: random gaps at the rate; even: evenly spaced
    mix: tuple[MixEntry, ...] = (MixEntry(),)

    def rate_at(self, t: float) -> float:
        """Arrival rate at `t` seconds into the scenario's own timeline."""
        if self.shape == "ramp":
            return _ramp(self, t)
        if self.shape == "burst":
            start = self.burst_at
            if t >= start:
                phase = t - start
                if self.burst_every:
                    phase %= self.burst_every
                if phase < self.burst_for:
                    return self.burst_rate
            return self.rate
        if self.shape == "sine":
            return max(0.0, self.rate + self.amplitude * math.sin(2 * math.pi * t / self.period))
        return self.rate

    def max_rate(self) -> float:
        """An upper bound of `rate_at` (for sampling arrivals)."""
        if self.shape == "ramp":
            return max(self.rate, self.peak)
        if self.shape == "burst":
            return max(self.rate, self.burst_rate)
        if self.shape == "sine":
            return self.rate + self.amplitude
        return self.rate


def drill_label(action: str, target: str, params: dict[str, Any]) -> str:
    """`kill busiest`, `scale to 8`, `poison x5`, `balancer weighted`, ..."""
    if action in ("kill", "hang", "slow"):
        return f"{action} {target}"
    if action == "scale" and params.get("to") is not None:
        return f"scale to {params['to']}"
    if action in ("poison", "burst") and params.get("count") is not None:
        return f"{action} x{params['count']}"
    if action == "balancer" and params.get("balancer"):
        return f"balancer {params['balancer']}"
    if action == "rolling-update" and params.get("version"):
        return f"rolling-update to {params['version']}"
    return action


def _ramp(spec: LoadSpec, t: float) -> float:
    (a, b), down = spec.ramp_up, spec.ramp_down
    if down is not None and t >= down[0]:
        c, d = down
        if t >= d:
            return spec.rate
        return spec.peak + (spec.rate - spec.peak) * (t - c) / (d - c)
    if t <= a:
        return spec.rate
    if t >= b:
        return spec.peak
    return spec.rate + (spec.peak - spec.rate) * (t - a) / (b - a)


@dataclass(frozen=True, slots=True)
class DrillSpec:
    """A timed drill: an action at `at` seconds, with a target and parameters."""

    at: float
    action: str
    target: str = "busiest"
    name: str = ""
    params: tuple[tuple[str, Any], ...] = ()
    max_detection_s: float | None = None  # overrides the scenario's SLO for this drill
    max_recovery_s: float | None = None

    @property
    def label(self) -> str:
        """The drill's name, or one made from its action, target and parameters."""
        return self.name or drill_label(self.action, self.target, dict(self.params))


@dataclass(frozen=True, slots=True)
class SloSpec:
    """What the run must achieve. Unset limits are not checked; nothing lost always is."""

    min_throughput_per_s: float | None = None
    max_latency_p50_ms: float | None = None
    max_latency_p95_ms: float | None = None
    max_latency_p99_ms: float | None = None
    max_latency_p99_ms_by_priority: tuple[tuple[int, float], ...] = ()
    max_detection_s: float | None = None
    max_recovery_s: float | None = None
    max_dead_lettered: int | None = None
    max_duplicates: int | None = None
    drained: bool = True  # every message acked or dead-lettered by the end


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: build its engine with `make_engine`, run it with `Workload`."""

    name: str
    duration: float
    engine: EngineConfig
    load: LoadSpec = field(default_factory=LoadSpec)
    handler: HandlerSpec = field(default_factory=HandlerSpec)
    drills: tuple[DrillSpec, ...] = ()
    slo: SloSpec = field(default_factory=SloSpec)
    description: str = ""
    seed: int | None = None
    drain_timeout: float = 15.0
    path: str | None = None

    @property
    def batch(self) -> bool:
        """Whether the simulated handler takes batches."""
        return self.engine.batch_size > 1

    def make_engine(
        self,
        clock: Clock | None = None,
        handler: Handler | None = None,
        seed: int | None = None,
        broker: Broker | str | None = None,
    ) -> Engine:
        """An Engine with this scenario's settings and its simulated handler (or `handler`).

        `broker` is a Broker or a URL (memory, sqlite:///FILE.db; None: memory).

        The handler is wrapped so the workload's loss checker sees every completion.
        """
        seed = self.seed if seed is None else seed
        clock = clock or MonotonicClock()
        cfg = dataclasses.replace(self.engine, seed=seed)
        ledger = Ledger(clock)
        if handler is not None:
            return Engine(cfg, handler=Tap(handler, ledger), broker=broker, clock=clock)
        sim = Simulation(self.handler, clock, seed)
        if self.batch:
            return Engine(
                cfg, batch_handler=BatchTap(sim.handle_batch, ledger), broker=broker, clock=clock
            )
        return Engine(cfg, handler=Tap(sim.handle, ledger), broker=broker, clock=clock)

    def summary(self) -> str:
        """One line: consumers, balancer, load, drills."""
        cfg = self.engine
        mode = f", batches of {cfg.batch_size}" if self.batch else ""
        return (
            f"{counted(cfg.consumers, 'consumer')}, {cfg.balancer}{mode}; {self.load.shape} "
            f"load up to {self.load.max_rate():g} msg/s; {counted(len(self.drills), 'drill')}"
        )
