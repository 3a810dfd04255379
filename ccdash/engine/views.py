"""Building the frozen Snapshot from the live engine (kept cheap: no per-lease scans)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccdash.engine.snapshot import AutoscalerView, ConsumerView, LeaseView, QueueView, Snapshot

if TYPE_CHECKING:
    from ccdash.brokers.base import Broker
    from ccdash.engine.consumer import Consumer
    from ccdash.engine.engine import Engine


def consumer_view(c: Consumer, now: float) -> ConsumerView:
    """One consumer as operators see it."""
    return ConsumerView(
        id=c.id,
        state=c.note_state(),
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


def build_snapshot(eng: Engine, *, max_leases: int, max_dead: int) -> Snapshot:
    """The engine's state now; leases and dead letters are capped to keep it cheap."""
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
    h = eng.health
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
        alerts=eng.alerts.view(),
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
        last_event_seq=eng.events[-1].seq if eng.events else 0,
        autoscaler=autoscaler_view(eng, now),
        stalls=tuple(reversed(h.stalls)),
    )


def autoscaler_view(eng: Engine, now: float) -> AutoscalerView:
    """The newest decision, and the forecast that an earlier one made for now."""
    cfg = eng.config
    decisions = eng.autoscaler.decisions
    horizon = cfg.forecast_horizon
    for_now = None
    # Newest first: only about horizon / interval decisions are looked at.
    for d in reversed(decisions):
        if d.at <= now - horizon:
            # A gap (autoscaler off meanwhile) makes that forecast no forecast for now.
            if d.at >= now - horizon - 2 * cfg.scale_interval:
                for_now = d.forecast_rate
            break
    return AutoscalerView(
        last=decisions[-1] if decisions else None,
        horizon=horizon,
        forecast_for_now=for_now,
        predictive=cfg.predictive,
    )


def queue_latency(broker: Broker, now: float) -> float | None:
    """Age of the oldest ready message in seconds (None: none ready, or the broker
    cannot tell): the snapshot, the alert rules and /metrics all read this."""
    at = broker.oldest_ready_published_at()
    return None if at is None else max(0.0, now - at)
