"""A built-in simulated handler for workers: `ccdash worker --handler ccdash.demo:handle`.

The default scenario's handler (lognormal latency around 30 ms, 2% transient
failures, poison messages always fail) on the real clock, so a Redis fleet can be
toured without writing a handler first. `handle_fast` skips the latency.
"""

from __future__ import annotations

from functools import cache

from ccdash.brokers.base import Delivery
from ccdash.clock import MonotonicClock
from ccdash.scenario.simulated import Simulation, is_poison


@cache
def _simulation() -> Simulation:
    """The default scenario's simulated handler (built on first use)."""
    from ccdash.scenario import load_scenario

    return Simulation(load_scenario(None).handler, MonotonicClock())


async def handle(d: Delivery) -> None:
    """Take a sampled time, then succeed, fail now and then, or fail for good if the
    message is poison (`{"poison": true}`): the demo's workload, in your worker."""
    await _simulation().handle(d)


async def handle_fast(d: Delivery) -> None:
    """No latency: every message succeeds at once, except poison ones."""
    if is_poison(d.body):
        raise ValueError(f"poison message {d.message_id} always fails")


__all__ = ["handle", "handle_fast"]
