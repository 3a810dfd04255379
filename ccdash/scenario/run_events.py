"""A workload run as its viewers see it: its phases, its events and its progress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

READY, RUNNING, DRAINING, DONE, INTERRUPTED = "ready", "running", "draining", "done", "interrupted"


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
