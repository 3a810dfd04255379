"""The simulated handler: latency from a distribution, transient errors, poison messages."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from ccdash.brokers.base import Delivery
from ccdash.clock import Clock

_Z99 = 2.3263478740408408  # the standard normal's 99th percentile
UPGRADE_SPEEDUP = 0.8  # each demo upgrade (v2, v3, ...) is 20% quicker: the update shows


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """The simulated handler: how long it takes and how often it fails."""

    latency: str = "lognormal"
    ms: float = 20.0  # constant
    min_ms: float = 5.0  # uniform
    max_ms: float = 50.0
    median_ms: float = 20.0  # lognormal
    p99_ms: float = 100.0
    error_rate: float = 0.0  # transient failures per attempt (retried)
    poison_rate: float = 0.0  # share of messages that always fail (end in the DLQ)
    per_item_ms: float = 1.0  # batch handlers: added per message of a batch
    slow: tuple[tuple[str, float], ...] = ()  # consumer id -> slowness factor


class SimulatedFailure(Exception):
    """A failure the simulated handler raises on purpose."""


class TransientError(SimulatedFailure):
    """Fails this attempt only; a retry may succeed."""


class PoisonMessage(SimulatedFailure):
    """This message always fails: it ends in the DLQ."""


def latency_sampler(spec: HandlerSpec, rng: random.Random) -> Callable[[], float]:
    """A function returning one handler latency in seconds."""
    if spec.latency == "constant":
        value = spec.ms / 1000
        return lambda: value
    if spec.latency == "uniform":
        lo, hi = spec.min_ms / 1000, spec.max_ms / 1000
        return lambda: rng.uniform(lo, hi)
    mu = math.log(spec.median_ms / 1000)
    sigma = (math.log(spec.p99_ms / 1000) - mu) / _Z99
    return lambda: rng.lognormvariate(mu, sigma)


def is_poison(body: object) -> bool:
    """Messages the workload marked as always failing."""
    return isinstance(body, dict) and body.get("poison") is True


class Simulation:
    """Per-message and batch handlers with the scenario's latency and failure rates."""

    def __init__(
        self,
        spec: HandlerSpec,
        clock: Clock,
        seed: int | None = None,
        *,
        version: str = "v1",
        speed: float = 1.0,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.seed = seed
        self.version = version
        self.speed = speed  # multiplies every sampled latency
        stream = f"ccdash-handler-{seed}" + ("" if version == "v1" else f"-{version}")
        self.rng = random.Random(stream) if seed is not None else random.Random()
        self.sample = latency_sampler(spec, self.rng)
        self.slow = dict(spec.slow)

    def upgraded(self, version: str) -> Simulation:
        """The demo's next handler version (what a rolling update installs): the same
        failures, 20% quicker, with its own random stream."""
        return Simulation(
            self.spec, self.clock, self.seed, version=version, speed=self.speed * UPGRADE_SPEEDUP
        )

    def _fails(self, d: Delivery) -> str | None:
        if is_poison(d.body):
            return f"poison message {d.message_id} always fails"
        if self.spec.error_rate and self.rng.random() < self.spec.error_rate:
            return "simulated transient failure"
        return None

    async def handle(self, d: Delivery) -> None:
        """Take a sampled time; then fail if the message is poison or the dice say so."""
        await self.clock.sleep(self.sample() * self.speed * self.slow.get(d.consumer_id, 1.0))
        error = self._fails(d)
        if error is not None:
            raise (PoisonMessage if is_poison(d.body) else TransientError)(error)

    async def handle_batch(self, batch: list[Delivery]) -> dict[str, str]:
        """One sampled time plus `per_item_ms` per message; returns the failures by id."""
        factor = self.slow.get(batch[0].consumer_id, 1.0) if batch else 1.0
        took = self.sample() + self.spec.per_item_ms / 1000 * len(batch)
        await self.clock.sleep(took * factor * self.speed)
        failures = {}
        for d in batch:
            error = self._fails(d)
            if error is not None:
                kind = "PoisonMessage" if is_poison(d.body) else "TransientError"
                failures[d.message_id] = f"{kind}: {error}"
        return failures
