"""Frame records back into snapshots: the reader's side of codec.py.

Every value read from a file is type-checked on the way in (`check_values`), so
a damaged record fails as a ValueError naming what is wrong, never later in a
widget. Entries are decoded once and never changed in place: a checkpoint is a
shallow copy of the dicts that hold them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from ccdash.brokers.base import DeadLetter, HistoryEntry
from ccdash.engine.alerts import Alert
from ccdash.engine.snapshot import (
    AutoscalerView,
    ConsumerView,
    Decision,
    LeaseView,
    QueueView,
    ScalingEvent,
    Snapshot,
    StallView,
)
from ccdash.record.codec import ALERTS, COLLECTIONS, CONSUMERS, DEAD, LEASES, SCALING, STALLS


class NotRecorded:
    """A dead letter's body that was left out of the recording (no --record-bodies)."""

    def __repr__(self) -> str:
        return "(body not recorded: record with --record-bodies to keep message bodies)"


NOT_RECORDED = NotRecorded()


def apply_order(prev: list[str], diff: list[Any]) -> list[str]:
    """The key order that `diff_order` described (ValueError if it does not fit `prev`)."""
    out: list[str] = []
    for part in diff:
        if isinstance(part, str):
            out.append(part)
        else:
            start, length = part
            if not (
                isinstance(start, int)
                and isinstance(length, int)
                and start >= 0
                and length > 0
                and start + length <= len(prev)
            ):
                raise ValueError(f"order run {part!r} outside the previous {len(prev)} keys")
            out.extend(prev[start : start + length])
    return out


class DecodedState:
    """The state a reader rebuilds frame by frame; `snapshot()` freezes it."""

    __slots__ = ("at", "top", "orders", "items")

    def __init__(self) -> None:
        self.at = 0.0
        self.top: dict[str, Any] = {}
        self.orders: dict[str, list[str]] = {name: [] for name in COLLECTIONS}
        self.items: dict[str, dict[str, Any]] = {name: {} for name in COLLECTIONS}

    def copy(self) -> DecodedState:
        """A copy that later frames do not change (entries are never mutated in place)."""
        out = DecodedState()
        out.at = self.at
        out.top = dict(self.top)
        out.orders = {k: list(v) for k, v in self.orders.items()}
        out.items = {k: dict(v) for k, v in self.items.items()}
        return out

    def apply(self, rec: dict[str, Any]) -> None:
        """Apply one frame record (ValueError, KeyError or TypeError if it is malformed)."""
        at = rec["at"]
        if not isinstance(at, int | float):
            raise ValueError(f"frame time {at!r} is not a number")
        self.at = float(at)
        top = rec.get("v")
        if top is not None:
            if not isinstance(top, dict):
                raise ValueError("frame values are not an object")
            check_top(top)
            self.top.update(top)
        for name in COLLECTIONS:
            part = rec.get(name)
            if part is None:
                continue
            if not isinstance(part, dict):
                raise ValueError(f"collection {name!r} is not an object")
            items = self.items[name]
            if "o" in part:
                order = apply_order(self.orders[name], part["o"])
                self.orders[name] = order
                kept = set(order)
                for k in [k for k in items if k not in kept]:
                    del items[k]
            upd = part.get("u", {})
            if not isinstance(upd, dict):
                raise ValueError(f"updates of {name!r} are not an object")
            for k, v in upd.items():
                items[k] = _DECODERS[name](k, v)
            missing = [k for k in self.orders[name] if k not in items]
            if missing:
                raise ValueError(f"{name!r} lists {missing[0]!r} without its values")

    def snapshot(self) -> Snapshot:
        """The frozen Snapshot of this state (ValueError if the values are malformed)."""
        t, at = self.top, self.at
        q = t["q"]
        auto = t.get("auto")
        return Snapshot(
            at=at,
            queue=QueueView(
                int(q[0]),
                int(q[1]),
                int(q[2]),
                int(q[3]),
                int(q[4]),
                None if q[5] is None else int(q[5]),
            ),
            consumers=tuple(
                _consumer_view(cid, self.items[CONSUMERS][cid], at)
                for cid in self.orders[CONSUMERS]
            ),
            leases=tuple(
                _lease_view(mid, self.items[LEASES][mid], at) for mid in self.orders[LEASES]
            ),
            dead_letters=tuple(self.items[DEAD][k] for k in self.orders[DEAD]),
            alerts=tuple(self.items[ALERTS][k] for k in self.orders[ALERTS]),
            balancer=str(t["balancer"]),
            published=int(t["published"]),
            acked=int(t["acked"]),
            dead_lettered=int(t["dead_lettered"]),
            redelivered=int(t["redelivered"]),
            failovers=int(t["failovers"]),
            publish_rate=float(t["publish_rate"] or 0.0),
            ack_rate=float(t["ack_rate"] or 0.0),
            latency_p50=_opt_float(t.get("latency_p50")),
            latency_p99=_opt_float(t.get("latency_p99")),
            loop_lag=float(t.get("loop_lag") or 0.0),
            paused=bool(t["paused"]),
            autoscale=bool(t["autoscale"]),
            desired_consumers=int(t["desired"]),
            broker=str(t["broker"]),
            scaling=tuple(self.items[SCALING][k] for k in self.orders[SCALING]),
            last_event_seq=int(t.get("seq") or 0),
            scaling_counts=tuple((str(d), str(r), int(n)) for d, r, n in t.get("sc") or ()),
            visibility_timeout=float(t.get("vt") or 30.0),
            stalls=tuple(self.items[STALLS][k] for k in self.orders[STALLS]),
            autoscaler=None
            if auto is None
            else AutoscalerView(
                last=None if auto[0] is None else _decision_of(auto[0]),
                horizon=float(auto[1]),
                forecast_for_now=_opt_float(auto[2]),
                predictive=bool(auto[3]),
            ),
        )


def _decision_of(v: list[Any]) -> Decision:
    at, current, reactive, predictive, desired, applied, reason, arrival, forecast, service = v
    return Decision(
        at,
        current,
        reactive,
        predictive,
        desired,
        applied,
        reason,
        arrival or 0.0,
        forecast or 0.0,
        service or 0.0,
    )


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


def _consumer_view(cid: str, v: list[Any], at: float) -> ConsumerView:
    (
        state,
        weight,
        in_flight,
        processed,
        failed,
        p50,
        p99,
        beat,
        version,
        slow,
        hung,
        ended_at,
        note,
    ) = v
    return ConsumerView(
        id=cid,
        state=state,
        weight=weight,
        in_flight=in_flight,
        processed=processed,
        failed=failed,
        latency_p50=p50,
        latency_p99=p99,
        heartbeat_age=max(0.0, (ended_at if ended_at is not None else at) - beat),
        version=version,
        slow_factor=slow,
        hung=hung,
        ended_at=ended_at,
        note=note,
    )


def _lease_view(mid: str, v: list[Any], at: float) -> LeaseView:
    consumer, attempt, deadline, priority = v
    return LeaseView(mid, consumer, attempt, deadline - at, priority)


def decode_body(v: Any) -> Any:
    """The body `encode_body` wrote; NOT_RECORDED where it was left out."""
    if v is None:
        return NOT_RECORDED
    kind, value = v
    if kind == "b":
        return base64.b64decode(value, validate=True)
    if kind == "j":
        return value
    raise ValueError(f"unknown body kind {kind!r}")


_KINDS: dict[str, tuple[type, ...]] = {
    "s": (str,),
    "i": (int,),
    "n": (int, float),
    "b": (bool,),
    "l": (list,),
    "a": (object,),
}


def check_values(v: Any, spec: str, what: str) -> list[Any]:
    """`v` as a list whose items match `spec` (one letter each: s str, i int, n number,
    b bool, l list, a anything; upper case also allows None); ValueError if not."""
    if not (isinstance(v, list) and len(v) == len(spec)):
        raise ValueError(f"{what} is not a list of {len(spec)} values")
    for i, (x, kind) in enumerate(zip(v, spec, strict=True)):
        if x is None and kind.isupper():
            continue
        types = _KINDS[kind.lower()]
        if not isinstance(x, types) or (isinstance(x, bool) and bool not in types):
            raise ValueError(f"{what}: value {i + 1} ({x!r:.40}) is not of kind {kind!r}")
    return v


_TOP_SPEC = {
    "balancer": "s",
    "published": "i",
    "acked": "i",
    "dead_lettered": "i",
    "redelivered": "i",
    "failovers": "i",
    "publish_rate": "N",
    "ack_rate": "N",
    "latency_p50": "N",
    "latency_p99": "N",
    "loop_lag": "N",
    "paused": "b",
    "autoscale": "b",
    "desired": "i",
    "broker": "s",
    "seq": "i",
    "lost": "I",
}
_DECISION = "niiiiisNNN"


def check_top(top: dict[str, Any]) -> None:
    """Type-check changed top-level values (ValueError naming the first bad one)."""
    for k, v in top.items():
        if k == "q":
            check_values(v, "iiiiiI", "queue counts")
        elif k == "auto":
            if v is not None:
                check_values(v, "LnNb", "autoscaler view")
                if v[0] is not None:
                    check_values(v[0], _DECISION, "autoscaler decision")
        elif k in _TOP_SPEC:
            check_values([v], _TOP_SPEC[k], k)


def _check_consumer(_: str, v: Any) -> list[Any]:
    return check_values(v, "siiiiNNnsnbNs", "a consumer entry")


def _check_lease(_: str, v: Any) -> list[Any]:
    return check_values(v, "sini", "a lease entry")


def _decode_dead(mid: str, v: Any) -> DeadLetter:
    reason, attempts, last_error, priority, body, dead_at, history = check_values(
        v, "sisiAnl", "a dead letter"
    )
    for h in history:
        check_values(h, "nsiss", "a delivery history entry")
    return DeadLetter(
        message_id=mid,
        reason=reason,
        attempts=attempts,
        last_error=last_error,
        priority=priority,
        body=decode_body(body),
        dead_at=dead_at,
        history=tuple(HistoryEntry(*h) for h in history),
    )


def _decode_alert(_: str, v: Any) -> Alert:
    return Alert(*check_values(v, "isssssnNi", "an alert"))


def _decode_scaling(_: str, v: Any) -> ScalingEvent:
    at, source, from_size, to_size, reason = check_values(v, "nsiis", "a scaling event")
    return ScalingEvent(at, source, from_size, to_size, reason)


def _decode_stall(_: str, v: Any) -> StallView:
    return StallView(*check_values(v, "nnsssi", "a stall"))


_DECODERS: dict[str, Callable[[str, Any], Any]] = {
    STALLS: _decode_stall,
    CONSUMERS: _check_consumer,
    LEASES: _check_lease,
    DEAD: _decode_dead,
    ALERTS: _decode_alert,
    SCALING: _decode_scaling,
}
