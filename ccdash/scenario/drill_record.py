"""What a drill is: its actions, its verdicts and its record (the events it reports,
`DrillEvent`, are in the engine's vocabulary: they travel through its log).

A `DrillRecord` is what firing a drill returns; it fills in as the engine reacts
(see `ccdash.scenario.drills` for the firing, `ccdash.scenario.drill_judge` for the
measuring and the verdict).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ccdash.engine import DrillEvent
from ccdash.hints import did_you_mean
from ccdash.scenario.errors import ScenarioError

DRILL_ACTIONS = ("kill", "hang", "slow", "poison", "burst", "scale", "balancer", "rolling-update")
FAULTS = ("kill", "hang")  # the drills whose detection and recovery are judged


class Verdict(StrEnum):
    """How a drill came out (a record's `verdict`; JSON and reports keep the words)."""

    PENDING = "pending"
    PASS = "pass"
    FAIL = "fail"
    DONE = "done"  # an action without a judged outcome (scale, balancer, slow)
    SKIPPED = "skipped"  # could not run (no such consumer, nobody to target)


# The short names the drill modules use.
PENDING, PASS, FAIL = Verdict.PENDING, Verdict.PASS, Verdict.FAIL
DONE, SKIPPED = Verdict.DONE, Verdict.SKIPPED
# The event a drill reports when its verdict is in.
VERDICT_EVENTS = {
    Verdict.PASS: DrillEvent.PASS,
    Verdict.FAIL: DrillEvent.FAIL,
    Verdict.DONE: DrillEvent.DONE,
    Verdict.SKIPPED: DrillEvent.SKIPPED,
}

DEFAULT_DEADLINE = 120.0  # seconds a judged drill without limits may take


@dataclass(eq=False)
class DrillRecord:
    """One drill as it happened; times are seconds after the fault (None: not yet)."""

    action: str
    requested: str  # busiest | idlest | random | a consumer id | "" for pool-wide drills
    at: float  # seconds since the run started
    name: str = ""
    source: str = "interactive"  # or "scheduled"
    target: str | None = None  # the consumer it hit
    params: dict[str, Any] = field(default_factory=dict)
    held: tuple[str, ...] = ()  # message ids the consumer held (or the drill injected)
    detected_after_s: float | None = None
    recovered_after_s: float | None = None
    replaced_after_s: float | None = None
    verdict: Verdict = Verdict.PENDING
    detail: str = ""
    max_detection_s: float | None = None
    max_recovery_s: float | None = None
    fired_at: float = 0.0  # engine clock time
    pending: set[str] = field(default_factory=set, repr=False)
    handled_at: float | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-able data."""
        return {
            "name": self.name,
            "action": self.action,
            "source": self.source,
            "at": round(self.at, 3),
            "requested": self.requested,
            "target": self.target,
            "params": {k: v for k, v in self.params.items() if v is not None},
            "held": len(self.held),
            "detected_after_s": _r(self.detected_after_s),
            "recovered_after_s": _r(self.recovered_after_s),
            "replaced_after_s": _r(self.replaced_after_s),
            "max_detection_s": self.max_detection_s,
            "max_recovery_s": self.max_recovery_s,
            "verdict": self.verdict,
            "detail": self.detail,
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def deadline_of(rec: DrillRecord) -> float:
    """Seconds after the fault by which a drill must be judged: its longest limit."""
    limits = [x for x in (rec.max_detection_s, rec.max_recovery_s) if x is not None]
    return max(limits) if limits else DEFAULT_DEADLINE


def check_action(action: str) -> None:
    """ScenarioError unless `action` is a drill the engine can run."""
    if action in DRILL_ACTIONS:
        return
    raise ScenarioError(
        f"unknown drill action {action!r}{did_you_mean(action, DRILL_ACTIONS)}; "
        f"valid: {', '.join(DRILL_ACTIONS)}"
    )
