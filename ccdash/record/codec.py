"""Snapshots as small delta records (decode.py reads them back).

A frame record carries only what changed since the previous frame: top-level
numbers that moved, and for each keyed collection (consumers, leases, dead
letters, alerts, scaling events, loop stalls) the entries that are new or changed plus the
key order when it changed. The order is itself a diff: runs of keys in the
previous order are written as `[start, length]`, new keys as strings, so a
dead-letter list that gained one entry costs one id, not two hundred.

Times that tick on their own are stored as instants, not ages: a consumer's
last heartbeat rather than its heartbeat age, a lease's deadline rather than
its time left. An idle consumer then encodes the same every frame and is not
written again. Consumers and leases (busy, and the bulk of a large pool) are
sampled at most once per `detail_every` seconds unless an event asks for them.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ccdash.brokers import redact_url
from ccdash.brokers.base import DeadLetter
from ccdash.engine.alerts import Alert
from ccdash.engine.snapshot import (
    ConsumerView,
    Decision,
    LeaseView,
    ScalingEvent,
    Snapshot,
    StallView,
)

CONSUMERS, LEASES, DEAD, ALERTS, SCALING, STALLS = "c", "l", "x", "a", "g", "k"
COLLECTIONS = (CONSUMERS, LEASES, DEAD, ALERTS, SCALING, STALLS)
SAMPLED = frozenset({CONSUMERS, LEASES})  # written at most once per detail_every

# The fields this codec writes and reads back (a test compares them with the dataclasses,
# so a field added there and not here is caught).
SNAPSHOT_FIELDS = frozenset(
    {
        "at",
        "queue",
        "consumers",
        "leases",
        "dead_letters",
        "alerts",
        "balancer",
        "published",
        "acked",
        "dead_lettered",
        "redelivered",
        "failovers",
        "publish_rate",
        "ack_rate",
        "latency_p50",
        "latency_p99",
        "loop_lag",
        "paused",
        "autoscale",
        "desired_consumers",
        "broker",
        "scaling",
        "last_event_seq",
        "autoscaler",
        "stalls",
        "scaling_counts",
        "visibility_timeout",
        # Only in `snapshot(history=True)` (reports, exposition); the recorder takes live
        # snapshots, where they are empty, so a replayed frame leaves them empty too.
        "decisions",
        "latency_totals",
    }
)
CONSUMER_FIELDS = frozenset(
    {
        "id",
        "state",
        "weight",
        "in_flight",
        "processed",
        "failed",
        "latency_p50",
        "latency_p99",
        "heartbeat_age",
        "version",
        "slow_factor",
        "hung",
        "ended_at",
        "note",
    }
)


def _t(x: float) -> float:
    """An instant or a duration, to the microsecond (enough to replay, small to store)."""
    return round(x, 6)


def _f(x: float | None, digits: int = 6) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, digits)


# -- encoding ---------------------------------------------------------------------


def _top(snap: Snapshot) -> dict[str, Any]:
    q = snap.queue
    auto = snap.autoscaler
    return {
        "q": [q.depth, q.ready, q.delayed, q.in_flight, q.dead, q.capacity],
        "balancer": snap.balancer,
        "published": snap.published,
        "acked": snap.acked,
        "dead_lettered": snap.dead_lettered,
        "redelivered": snap.redelivered,
        "failovers": snap.failovers,
        "publish_rate": _f(snap.publish_rate, 2),
        "ack_rate": _f(snap.ack_rate, 2),
        "latency_p50": _f(snap.latency_p50),
        "latency_p99": _f(snap.latency_p99),
        "loop_lag": _f(snap.loop_lag, 4),
        "paused": snap.paused,
        "autoscale": snap.autoscale,
        "desired": snap.desired_consumers,
        "broker": redact_url(snap.broker),  # never a password in a file
        "seq": snap.last_event_seq,
        "sc": [list(x) for x in snap.scaling_counts],
        "vt": snap.visibility_timeout,
        "auto": None
        if auto is None
        else [
            None if auto.last is None else _decision(auto.last),
            auto.horizon,
            _f(auto.forecast_for_now, 3),
            auto.predictive,
        ],
    }


def _decision(d: Decision) -> list[Any]:
    return [
        _t(d.at),
        d.current,
        d.reactive,
        d.predictive,
        d.desired,
        d.applied,
        d.reason,
        _f(d.arrival_rate, 3),
        _f(d.forecast_rate, 3),
        _f(d.service_time),
    ]


def _consumer(c: ConsumerView, at: float) -> list[Any]:
    # The instant of its last heartbeat: constant while nothing happens.
    beat = _t((c.ended_at if c.ended_at is not None else at) - c.heartbeat_age)
    return [
        c.state,
        c.weight,
        c.in_flight,
        c.processed,
        c.failed,
        _f(c.latency_p50),
        _f(c.latency_p99),
        beat,
        c.version,
        c.slow_factor,
        c.hung,
        None if c.ended_at is None else _t(c.ended_at),
        c.note,
    ]


def _lease(li: LeaseView, at: float) -> list[Any]:
    return [li.consumer_id, li.attempt, _t(at + li.expires_in), li.priority]


def encode_body(body: Any) -> list[Any]:
    """A body as ["b", base64] for bytes or ["j", value] for a JSON value."""
    if isinstance(body, bytes | bytearray | memoryview):
        return ["b", base64.b64encode(bytes(body)).decode("ascii")]
    return ["j", body]


def _dead(d: DeadLetter, bodies: bool) -> list[Any]:
    return [
        d.reason,
        d.attempts,
        d.last_error,
        d.priority,
        encode_body(d.body) if bodies else None,
        _t(d.dead_at),
        [[_t(h.at), h.consumer_id, h.attempt, h.outcome, h.error] for h in d.history],
    ]


def _alert(a: Alert) -> list[Any]:
    return [
        a.id,
        a.name,
        a.key,
        a.severity,
        a.message,
        a.state,
        _t(a.fired_at),
        None if a.resolved_at is None else _t(a.resolved_at),
        a.count,
    ]


def _scaling(e: ScalingEvent) -> list[Any]:
    return [_t(e.at), e.source, e.from_size, e.to_size, e.reason]


def _stall(s: StallView) -> list[Any]:
    return [_t(s.at), _t(s.seconds), s.consumer_id, s.message_id, s.where, s.leases_kept]


def _collections(snap: Snapshot, bodies: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    at = snap.at
    return {
        CONSUMERS: lambda: {c.id: _consumer(c, at) for c in snap.consumers},
        LEASES: lambda: {li.message_id: _lease(li, at) for li in snap.leases},
        DEAD: lambda: {d.message_id: _dead(d, bodies) for d in snap.dead_letters},
        ALERTS: lambda: {str(a.id): _alert(a) for a in snap.alerts},
        SCALING: lambda: {
            f"{e.at!r}|{e.from_size}|{e.to_size}|{e.source}": _scaling(e) for e in snap.scaling
        },
        STALLS: lambda: {repr(s.at): _stall(s) for s in snap.stalls},
    }


def diff_order(prev: dict[str, int], keys: list[str]) -> list[Any]:
    """`keys` as runs of the previous order (`[start, length]`) and new keys (strings)."""
    out: list[Any] = []
    run_start = run_len = -1
    for k in keys:
        i = prev.get(k)
        if i is not None and run_len > 0 and i == run_start + run_len:
            run_len += 1
            continue
        if run_len > 0:
            out.append([run_start, run_len])
            run_len = -1
        if i is None:
            out.append(k)
        else:
            run_start, run_len = i, 1
    if run_len > 0:
        out.append([run_start, run_len])
    return out


@dataclass(slots=True)
class _Sent:
    """What the reader knows of one collection: its key order and each entry."""

    order: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    items: dict[str, Any] = field(default_factory=dict)


class SnapshotEncoder:
    """Turns each snapshot into a frame record holding what changed since the last."""

    def __init__(self, *, bodies: bool = False, detail_every: float = 1.0) -> None:
        self.bodies = bodies
        self.detail_every = detail_every
        self._top: dict[str, Any] = {}
        self._sent = {name: _Sent() for name in COLLECTIONS}
        self._next_detail = -math.inf

    def encode(
        self, snap: Snapshot, *, force_detail: bool = False, lost: int | None = None
    ) -> dict[str, Any]:
        """The frame record of `snap` (`{"t": "s", "at": ...}` plus what changed); `lost`:
        the loss checker's count at that moment, if known (else the last one stays)."""
        rec: dict[str, Any] = {"t": "s", "at": _t(snap.at)}
        top = _top(snap)
        top["lost"] = self._top.get("lost") if lost is None else lost
        changed = {k: v for k, v in top.items() if k not in self._top or self._top[k] != v}
        if changed:
            rec["v"] = changed
            self._top = top
        detail = force_detail or snap.at >= self._next_detail
        if detail:
            self._next_detail = snap.at + self.detail_every
        for name, build in _collections(snap, self.bodies).items():
            if name in SAMPLED and not detail:
                continue
            part = self._diff(self._sent[name], build())
            if part:
                rec[name] = part
        return rec

    @staticmethod
    def _diff(sent: _Sent, now: dict[str, Any]) -> dict[str, Any]:
        part: dict[str, Any] = {}
        keys = list(now)
        if keys != sent.order:
            part["o"] = diff_order(sent.index, keys)
            sent.order = keys
            sent.index = {k: i for i, k in enumerate(keys)}
        upd = {k: v for k, v in now.items() if sent.items.get(k) != v}
        if upd:
            part["u"] = upd
        sent.items = now
        return part
