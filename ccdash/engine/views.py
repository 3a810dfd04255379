"""Building the frozen Snapshot from the live engine (kept cheap: no per-lease scans)."""

from __future__ import annotations

from ccdash.brokers.base import Broker
from ccdash.engine.consumer import Consumer
from ccdash.engine.metrics import bucket_upper_edges
from ccdash.engine.reading import EngineView
from ccdash.engine.snapshot import (
    ConsumerView,
    LatencyTotals,
    LeaseView,
    QueueView,
    Snapshot,
    shown_state,
)

_EDGES = bucket_upper_edges()


def consumer_view(c: Consumer, now: float) -> ConsumerView:
    """One consumer as operators see it."""
    return ConsumerView(
        id=c.id,
        state=shown_state(c.note_state(), c.held),
        weight=c.weight,
        in_flight=c.held,
        processed=c.processed,
        failed=c.failed,
        latency_p50=c.p50,
        latency_p99=c.p99,
        heartbeat_age=max(0.0, (c.ended_at or now) - c.last_beat),
        version=c.version,
        slow_factor=c.slow_factor,
        hung=c.hung,
        ended_at=c.ended_at,
        note=c.note,
    )


def build_snapshot(
    eng: EngineView, *, max_leases: int, max_dead: int, max_alerts: int = 50, history: bool = False
) -> Snapshot:
    """The engine's state now; leases, dead letters and alerts are capped to keep it cheap,
    and the autoscaler's decisions and all-time latencies come only with `history`."""
    now = eng.clock.now()
    stats = eng.broker.stats()
    consumers = tuple(
        [consumer_view(c, now) for c in eng.consumers.values()]
        + [consumer_view(c, now) for c in eng.ended]
    )
    leases = tuple(
        LeaseView(li.message_id, li.consumer_id, li.attempt, li.deadline - now, li.priority)
        for li in eng.broker.leases(max_leases)
    )
    h = eng.gauges
    return Snapshot(
        at=now,
        queue=QueueView(
            depth=stats.depth,
            ready=stats.ready,
            delayed=stats.delayed,
            in_flight=stats.in_flight,
            dead=stats.dead,
            capacity=stats.capacity,
            oldest_ready_age=queue_latency(eng.broker, now),
        ),
        consumers=consumers,
        leases=leases,
        dead_letters=tuple(eng.broker.dead_letters(max_dead)),
        alerts=eng.alerts.view(max_alerts),
        balancer=eng.balancer.name,
        published=stats.published,
        acked=stats.acked,
        dead_lettered=stats.dead_lettered,
        redelivered=stats.redelivered,
        failovers=eng.failovers,
        publish_rate=h.publish_rate.rate(),
        ack_rate=h.ack_rate.rate(),
        latency_p50=h.pool_p50,
        latency_p99=h.pool_p99,
        loop_lag=h.loop_lag,
        paused=eng.paused,
        autoscale=eng.autoscale,
        desired_consumers=eng.desired,
        broker=eng.broker.url,
        scaling=tuple(eng.scaling),
        last_event_seq=eng.last_event_seq,
        autoscaler=eng.autoscaler_view(now),
        scaling_counts=tuple((d, r, n) for (d, r), n in sorted(eng.pool.scaling_counts.items())),
        visibility_timeout=eng.broker.config.visibility_timeout,
        decisions=tuple(eng.decisions) if history else (),
        latency_totals=latency_totals(eng) if history else None,
        stalls=tuple(reversed(eng.stalls)),
    )


def latency_totals(eng: EngineView) -> LatencyTotals:
    """Every handler run ever timed: the pool's histogram, which every consumer's
    (ended ones too) fed."""
    for c in eng.consumers.values():  # what they timed but have not binned yet
        c.hist.digest()
    hist = eng.gauges.latency
    counts = [0] * len(_EDGES)
    hist.all_time_into(counts)
    buckets = tuple((edge, n) for edge, n in zip(_EDGES, counts, strict=True) if n)
    return LatencyTotals(buckets, hist.count, hist.total)


def queue_latency(broker: Broker, now: float) -> float | None:
    """Age of the oldest ready message in seconds (None: none ready, or the broker
    cannot tell): the snapshot, the alert rules and /metrics all read this."""
    at = broker.oldest_ready_published_at()
    return None if at is None else max(0.0, now - at)
