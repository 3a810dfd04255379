"""A workload run as its viewers see it: its phases, its events and its progress."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ccdash.engine import Kind, Level


class RunPhase(StrEnum):
    """Where a workload run is (`Workload.phase`, the progress line)."""

    READY = "ready"
    RUNNING = "running"
    DRAINING = "draining"
    DONE = "done"
    INTERRUPTED = "interrupted"


READY, RUNNING, DRAINING = RunPhase.READY, RunPhase.RUNNING, RunPhase.DRAINING
DONE, INTERRUPTED = RunPhase.DONE, RunPhase.INTERRUPTED


class RunEvent(Kind):
    """What a workload run reports of itself (its phases), beside the engine's events:
    the dashboard's log and a recording show them."""

    RUN_STARTED = "run-started", Level.INFO, "the run began: the scenario and its summary"
    DRAINING = "draining", Level.INFO, "publishing is done; the run waits for the queue to empty"
    PUBLISHES_SETTLED = (
        "publishes-settled",
        Level.INFO,
        "publishes still in doubt when publishing ended were confirmed or given up",
    )
    WATCHER_ABANDONED = (
        "watcher-abandoned",
        Level.WARNING,
        "the fleet watcher ignored cancellation and was left behind",
    )
    RUN_ENDED = "run-ended", Level.INFO, "the run ended: what was published, handled and lost"


@dataclass(frozen=True, slots=True)
class WorkloadEvent:
    """Something that happened during a run, `at` seconds after it started."""

    at: float
    kind: str
    message: str
    source: str = "workload"  # "workload" (run phases) | "engine" (via its listeners; drill-*)
    fields: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Progress:
    """The run at a glance, for a live view."""

    elapsed: float
    duration: float
    phase: str
    published: int
    completed: int
    depth: int
    in_flight: int
    dead: int
    consumers_up: int
    consumers_failed: int
    ack_rate: float
    publish_rate: float
    drills_fired: int
    drills_planned: int
