"""The headless report: the loss checker's verdict, the numbers, drills and SLO checks."""

from __future__ import annotations

import math
import signal
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from ccdash.brokers.base import QueueStats
from ccdash.clock import Clock
from ccdash.engine import Engine, Snapshot
from ccdash.scenario.drill_record import FAULTS, SKIPPED, DrillRecord
from ccdash.scenario.ledger import Ledger
from ccdash.scenario.model import Scenario
from ccdash.scenario.slo_checks import check_slos


class FinishedRun(Protocol):
    """A run as the report reads it (the Workload implements it)."""

    engine: Engine
    scenario: Scenario
    ledger: Ledger
    clock: Clock
    seed: int | None
    duration: float
    started_at: float | None
    publish_ended_at: float | None
    ended_at: float | None
    stop_reason: str | None
    purged: int
    unplanned: list[dict[str, Any]]
    stats_at_start: QueueStats | None

    @property
    def unconfirmed(self) -> int:
        """Publishes the broker never confirmed."""
        ...

    @property
    def stopping(self) -> bool:
        """Whether the run was stopped early."""
        ...

    @property
    def drill_results(self) -> Sequence[DrillRecord]:
        """Every drill fired, oldest first."""
        ...

    def elapsed(self) -> float:
        """Seconds the run lasted (so far)."""
        ...

    def sequence_digest(self) -> str:
        """A hash of what was generated."""
        ...


REPORT_FIELDS = (
    "scenario",
    "duration_s",
    "published",
    "acked",
    "dead_lettered",
    "lost",
    "duplicates",
    "redelivered",
    "throughput_per_s",
    "latency_ms",
    "failovers",
    "scaling_events",
    "alerts",
    "slo",
    "ok",
)


def quantile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank quantile of ascending values (None when empty)."""
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[i]


def _ms(values: list[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        v = quantile(values, q)
        out[name] = None if v is None else round(v * 1000, 1)
    return out


def build_report(wl: FinishedRun) -> dict[str, Any]:
    """Count from the workload's own records, compare with the broker, judge the SLOs."""
    eng, sc, led = wl.engine, wl.scenario, wl.ledger
    snap = eng.snapshot(max_leases=0, max_dead=1_000_000, max_alerts=1_000_000, history=True)
    stats = eng.broker.stats()  # the queue's lifetime counters (a shared queue has a past)
    still_queued = stats.ready + stats.delayed + stats.in_flight
    dead_ids = {d.message_id for d in snap.dead_letters}
    published, done, elsewhere = led.published, led.done, led.elsewhere
    # What the DLQ holds at the end is dead, even if a handler returned for it first
    # (its lease was lost before the ack): each message counts once.
    dead = sum(1 for m in published if m in dead_ids)
    acked = sum(1 for m in published if (m in done or m in elsewhere) and m not in dead_ids)
    # Ids that vanished from a shared queue beyond what its acked counter covers (Redis
    # lost its state) were not acked by anyone we know of: lost, not acked as well.
    acked_elsewhere = sum(1 for m in published if m in elsewhere) - led.unconfirmed
    acked -= led.unconfirmed
    # Ids the broker still holds are not lost; a purge is an operator's deletion.
    # On a shared broker, ids that vanished without a matching fleet ack are lost too.
    check = led.check(still_queued, dead_ids, wl.purged)
    unaccounted, lost = check.unaccounted, check.lost
    latencies = sorted(done[m] - t for m, t in published.items() if m in done)
    by_prio: dict[int, list[float]] = {}
    for m, t in published.items():
        if m in done:
            by_prio.setdefault(led.priority.get(m, 0), []).append(done[m] - t)
    elapsed = wl.elapsed()
    start = wl.started_at or 0.0
    # This run's counts: the broker's counters since the run started. A queue that had a
    # past (a shared Redis queue, a reused SQLite file) keeps its lifetime apart.
    before = wl.stats_at_start

    def run_count(name: str) -> int:
        now, then = getattr(stats, name), getattr(before, name) if before is not None else 0
        return int(now - then)

    report: dict[str, Any] = {
        "scenario": sc.name,
        "scenario_file": sc.path,
        "seed": wl.seed,
        "sequence_digest": wl.sequence_digest(),
        "duration_s": round(elapsed, 3),
        "planned_duration_s": wl.duration if math.isfinite(wl.duration) else None,
        "drain_s": round((wl.ended_at or wl.clock.now()) - wl.publish_ended_at, 3)
        if wl.publish_ended_at is not None
        else None,
        "interrupted": wl.stopping,
        "stopped_by": wl.stop_reason,
        "published": len(published),
        "unconfirmed_publishes": wl.unconfirmed,
        "acked": acked,
        "acked_elsewhere": acked_elsewhere,
        "dead_lettered": dead,
        "still_queued": still_queued,
        "purged": wl.purged,
        "lost": lost,
        "duplicates": led.duplicates,
        "redelivered": run_count("redelivered"),
        "throughput_per_s": round(acked / elapsed, 1) if elapsed > 0 else 0.0,
        "latency_ms": _ms(latencies),
        "latency_ms_by_priority": {str(p): _ms(sorted(v)) for p, v in sorted(by_prio.items())},
        "published_by_priority": {
            str(p): n for p, n in sorted(Counter(led.priority.get(m, 0) for m in published).items())
        },
        "failovers": [
            _failover(r)
            for r in wl.drill_results
            if r.action in FAULTS and r.verdict != SKIPPED  # skipped: nothing failed over
        ]
        + [
            {**u, "action": "unplanned", "detected_after_s": None, "recovered_after_s": None}
            for u in wl.unplanned
        ],
        "drills": [r.to_dict() for r in wl.drill_results],
        "scaling_events": [
            {
                "at": round(e.at - start, 3),
                "source": e.source,
                "from": e.from_size,
                "to": e.to_size,
                "reason": e.reason,
            }
            for e in snap.scaling
            if e.at >= start
        ],
        "autoscaler": _autoscaler(wl, snap, start),
        "alerts": [
            {
                "name": a.name,
                "key": a.key,
                "severity": a.severity,
                "state": a.state,
                "message": a.message,
                "fired_at": round(a.fired_at - start, 3),
                "resolved_at": None if a.resolved_at is None else round(a.resolved_at - start, 3),
                "count": a.count,
            }
            for a in sorted(snap.alerts, key=lambda a: a.id)
        ],
        "engine": {
            "published": run_count("published"),
            "acked": run_count("acked"),
            "dead_lettered": run_count("dead_lettered"),
            "in_dlq": stats.dead,
            "failovers": snap.failovers,
        },
        "loop_stalls": [
            {
                "at": round(st.at - start, 3),
                "seconds": round(st.seconds, 3),
                "consumer": st.consumer_id,
                "message_id": st.message_id,
                "where": st.where,
                "leases_kept": st.leases_kept,
            }
            for st in reversed(snap.stalls)
            if st.at >= start
        ],
    }
    if before is not None and (before.published or before.acked or before.dead):
        report["queue_lifetime"] = {
            "published": stats.published,
            "acked": stats.acked,
            "dead_lettered": stats.dead_lettered,
            "redelivered": stats.redelivered,
            "in_dlq": stats.dead,
        }
    if lost:
        report["unaccounted_ids"] = unaccounted[:20]
    checks = check_slos(wl, report)  # those not judged have a `why` instead of `ok`
    report["slo"] = [c for c in checks if "ok" in c]
    report["slo_not_judged"] = [c for c in checks if "ok" not in c]
    report["ok"] = verdict(report["slo"], interrupted=wl.stopping)
    return report


def verdict(checks: list[dict[str, Any]], *, interrupted: bool) -> bool:
    """The run's one verdict: it passed exactly when it ran to its end and every named
    check held. Everything that prints a result prints this."""
    return not interrupted and all(c["ok"] for c in checks)


def _autoscaler(wl: FinishedRun, snap: Snapshot, start: float) -> dict[str, Any]:
    """What the autoscaler did during the run: decisions made, changes applied, held back."""
    decisions = [d for d in snap.decisions if d.at >= start]
    changes = [e for e in snap.scaling if e.at >= start and e.source == "autoscaler"]
    held: Counter[str] = Counter(
        d.reason for d in decisions if d.applied == d.current and d.desired != d.current
    )
    sizes = [wl.engine.config.consumers, *(e.to_size for e in snap.scaling if e.at >= start)]
    return {
        "enabled": snap.autoscale,
        "predictive": wl.engine.config.predictive,
        "decisions": len(decisions),  # evaluations (the engine keeps the latest 300)
        "changes": len(changes),
        "up": sum(1 for e in changes if e.to_size > e.from_size),
        "down": sum(1 for e in changes if e.to_size < e.from_size),
        "reasons": dict(sorted(Counter(e.reason for e in changes).items())),
        "held": dict(sorted(held.items())),
        "peak_consumers": max(sizes),
        "final_consumers": snap.desired_consumers,
    }


def _failover(r: Any) -> dict[str, Any]:
    return {
        "consumer": r.target,
        "action": r.action,
        "at": round(r.at, 3),
        "detected_after_s": r.to_dict()["detected_after_s"],
        "recovered_after_s": r.to_dict()["recovered_after_s"],
        "replaced_after_s": r.to_dict()["replaced_after_s"],
        "held": len(r.held),
        "verdict": r.verdict,
    }


def exit_code(report: dict[str, Any]) -> int:
    """0 if the run passed; 1 if anything was lost or an SLO failed; 128+signal if stopped."""
    if report["ok"]:
        return 0
    if report.get("interrupted") and report["lost"] == 0:
        by = str(report.get("stopped_by") or "")
        return 128 + signal.Signals.__members__.get(by, signal.SIGINT)
    return 1
