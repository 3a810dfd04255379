"""The checks that judge a scenario run: nothing lost, drained, every drill passed,
then the scenario's SLOs. A check the run cannot judge (too little load, nothing
published) is listed apart with why, instead of failing or passing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ccdash.scenario.drill_record import DONE, FAULTS, PASS, DrillRecord
from ccdash.scenario.model import Scenario

# Seconds of load below which a throughput SLO is not judged: acked / run time over a
# short run is mostly its fixed costs (consumers starting, the drain, drills settling).
MIN_THROUGHPUT_LOAD_S = 5.0


class JudgedRun(Protocol):
    """What the checks read of a run besides its report."""

    scenario: Scenario

    @property
    def stopping(self) -> bool:
        """Whether the run was stopped early."""
        ...

    @property
    def drill_results(self) -> Sequence[DrillRecord]:
        """Every drill fired, oldest first."""
        ...


def _check(name: str, text: str, limit: Any, actual: Any, ok: bool) -> dict[str, Any]:
    return {"name": name, "text": text, "limit": limit, "actual": actual, "ok": bool(ok)}


def _not_judged(check: dict[str, Any], why: str) -> None:
    """The run cannot judge this check: listed apart with `why`, instead of `ok`."""
    del check["ok"]
    check["why"] = why


def check_slos(wl: JudgedRun, r: dict[str, Any]) -> list[dict[str, Any]]:
    """Every check of the run: nothing lost, drained, drills, then the scenario's SLOs."""
    slo = wl.scenario.slo
    out = [
        _check("no_loss", "nothing lost", 0, r["lost"], r["lost"] == 0),
        _check(
            "publishes_confirmed",
            "every publish confirmed by the broker",
            0,
            r["unconfirmed_publishes"],
            r["unconfirmed_publishes"] == 0,
        ),
    ]
    if slo.drained and not wl.stopping:
        out.append(
            _check(
                "drained", "queue empty by the end", 0, r["still_queued"], r["still_queued"] == 0
            )
        )
    drills = wl.drill_results
    if drills:
        good = sum(1 for d in drills if d.verdict in (PASS, DONE))
        out.append(
            _check(
                "drills",
                "every drill passed",
                len(drills),
                f"{good}/{len(drills)}",
                good == len(drills),
            )
        )
    if slo.min_throughput_per_s is not None:
        check = _check(
            "min_throughput_per_s",
            f"throughput >= {slo.min_throughput_per_s:g} msg/s",
            slo.min_throughput_per_s,
            r["throughput_per_s"],
            r["throughput_per_s"] >= slo.min_throughput_per_s,
        )
        if (load := r["duration_s"] - (r["drain_s"] or 0.0)) < MIN_THROUGHPUT_LOAD_S:
            _not_judged(
                check,
                f"the load ran {load:.1f} s; throughput is judged over at least "
                f"{MIN_THROUGHPUT_LOAD_S:g} s (shorter, the run's fixed costs weigh most)",
            )
        out.append(check)
    first_latency = len(out)
    for q in ("p50", "p95", "p99"):
        limit = getattr(slo, f"max_latency_{q}_ms")
        if limit is not None:
            actual = r["latency_ms"][q]
            out.append(
                _check(
                    f"max_latency_{q}_ms",
                    f"{q} latency <= {limit:g} ms",
                    limit,
                    actual,
                    actual is not None and actual <= limit,
                )
            )
    load = r["duration_s"] - (r["drain_s"] or 0.0)
    for prio, limit in slo.max_latency_p99_ms_by_priority:
        actual = r["latency_ms_by_priority"].get(str(prio), {}).get("p99")
        check = _check(
            f"max_latency_p99_ms_by_priority.{prio}",
            f"p99 latency of priority {prio} <= {limit:g} ms",
            limit,
            actual,
            actual is not None and actual <= limit,
        )
        if r["published"] and not r["published_by_priority"].get(str(prio)):
            why = f"no message of priority {prio} was published (the load ran {load:.2f} s)"
            _not_judged(check, why)
        out.append(check)
    if r["published"] == 0:  # a load over before its first message: nothing was timed
        for check in out[first_latency:]:
            _not_judged(check, f"no message was published (the load ran {load:.2f} s)")
    faults = [d for d in drills if d.action in FAULTS]
    for key, attr, what in (
        ("max_detection_s", "detected_after_s", "detection"),
        ("max_recovery_s", "recovered_after_s", "recovery"),
    ):
        limit = getattr(slo, key)
        if limit is None or not faults:
            continue
        times = [getattr(d, attr) for d in faults]
        worst = None if any(t is None for t in times) else round(max(times), 3)
        out.append(
            _check(
                key,
                f"failover {what} <= {limit:g} s",
                limit,
                worst,
                worst is not None and worst <= limit,
            )
        )
    if slo.max_dead_lettered is not None:
        out.append(
            _check(
                "max_dead_lettered",
                f"dead-lettered <= {slo.max_dead_lettered}",
                slo.max_dead_lettered,
                r["dead_lettered"],
                r["dead_lettered"] <= slo.max_dead_lettered,
            )
        )
    if slo.max_duplicates is not None:
        out.append(
            _check(
                "max_duplicates",
                f"duplicates <= {slo.max_duplicates}",
                slo.max_duplicates,
                r["duplicates"],
                r["duplicates"] <= slo.max_duplicates,
            )
        )
    return out
