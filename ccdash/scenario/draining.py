"""A workload's drain phase: after publishing, wait (bounded) for the queue to empty
and the drills to settle, and say how the run ended.

On a shared broker (a Redis fleet) other workers ack our messages without an event
here, so a watcher re-reads the counts while draining.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ccdash.aio import cancel_and_wait
from ccdash.clock import Clock
from ccdash.engine import Engine
from ccdash.scenario.drills import DrillRunner
from ccdash.scenario.model import Scenario
from ccdash.scenario.run_events import DRAINING, RunEvent, RunPhase


class DrainingRun(Protocol):
    """A run as its drain phase sees it (the Workload implements it)."""

    engine: Engine
    scenario: Scenario
    clock: Clock
    drills: DrillRunner
    shared_url: str | None
    phase: RunPhase
    drained: bool | None
    stop_reason: str | None

    @property
    def stopping(self) -> bool:
        """Whether the run was stopped early."""
        ...

    def elapsed(self) -> float:
        """Seconds the run lasted (so far)."""
        ...

    def emit(self, kind: str, message: str) -> None:
        """Record an event of the run."""
        ...


async def drain(
    run: DrainingRun,
    stopped: asyncio.Future[None],
    pause_until: Callable[[float], Awaitable[None]],
) -> None:
    """Wait (bounded) until every message is acked or dead-lettered and drills settled;
    `stopped` ends the wait early; `pause_until` sleeps until a clock time or a wake-up.
    Sets `run.drained`."""
    run.phase = DRAINING
    timeout = run.scenario.drain_timeout
    depth = run.engine.broker.stats()
    run.emit(
        RunEvent.DRAINING,
        f"publishing done; draining {depth.depth + depth.in_flight} messages (up to {timeout:g} s)",
    )
    deadline = run.clock.now() + timeout
    join = asyncio.ensure_future(run.engine.join(timeout=timeout))
    watch = asyncio.ensure_future(watch_fleet(run)) if run.shared_url is not None else None
    try:
        await asyncio.wait({join, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not join.done():
            await cancel_and_wait(run.clock, [join], "drain")
            run.drained = False
        else:
            run.drained = join.exception() is None
        while run.drills.pending() and not run.stopping and run.clock.now() < deadline:
            await pause_until(deadline)
    finally:
        # Bounded: the watcher talks to Redis, whose client may swallow a cancellation.
        if watch is not None and await cancel_and_wait(run.clock, [watch], "drain"):
            run.emit(
                RunEvent.WATCHER_ABANDONED,
                "the fleet watcher ignored cancellation and was left behind",
            )


async def watch_fleet(run: DrainingRun, every: float = 0.5) -> None:
    """While draining on a shared broker: other workers' acks change the counts
    without an event here, so re-read them now and then (drills ask for themselves)."""
    broker: Any = run.engine.broker
    me = asyncio.current_task()
    while me is None or not me.cancelling():  # a cancellation swallowed below still ends it
        await run.clock.sleep(every)
        with contextlib.suppress(Exception):  # a Redis hiccup: try again next time
            if hasattr(broker, "refresh"):
                await broker.refresh()
            run.engine.check_joiners()


def end_note(run: DrainingRun) -> str:
    """How the run ended, in one line for its last event."""
    if run.stopping:
        return f"run interrupted ({run.stop_reason}) after {run.elapsed():.1f} s"
    if run.drained is False:
        return f"drain timed out after {run.scenario.drain_timeout:g} s"
    return f"run finished after {run.elapsed():.1f} s"
