"""`EngineView`: the engine read-only, as the alert rules and the snapshot builder see it.

A Protocol, so those parts depend on what they read, never on the Engine class
(the Engine satisfies it; a test double can too). Every member is a read-only
property or a query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from ccdash.brokers.base import Broker
from ccdash.clock import Clock
from ccdash.engine.alerts import AlertBook
from ccdash.engine.balancers import Balancer
from ccdash.engine.consumer import Consumer
from ccdash.engine.gauges import Gauges
from ccdash.engine.snapshot import AutoscalerView, Decision, ScalingEvent, StallView


class PoolView(Protocol):
    """The consumer pool's all-time tallies, read-only."""

    @property
    def scaling_counts(self) -> Mapping[tuple[str, str], int]:
        """Pool size changes by (direction, reason)."""
        ...


class EngineView(Protocol):
    """What can be read of a running engine."""

    @property
    def clock(self) -> Clock:
        """The engine's clock."""
        ...

    @property
    def broker(self) -> Broker:
        """Where the messages live (read: stats, leases, dead letters, url)."""
        ...

    @property
    def pool(self) -> PoolView:
        """The consumer pool's all-time tallies."""
        ...

    @property
    def consumers(self) -> Mapping[str, Consumer]:
        """Running consumers (not ended), oldest first."""
        ...

    @property
    def ended(self) -> Sequence[Consumer]:
        """Recently failed or stopped consumers, newest last."""
        ...

    @property
    def desired(self) -> int:
        """The pool size the engine aims for."""
        ...

    @property
    def failovers(self) -> int:
        """Consumers failed and failed over, all-time."""
        ...

    @property
    def paused(self) -> bool:
        """Whether consumption is paused."""
        ...

    @property
    def autoscale(self) -> bool:
        """Whether the autoscaler sizes the pool."""
        ...

    @property
    def stopping(self) -> bool:
        """Whether the engine is shutting down."""
        ...

    @property
    def balancer(self) -> Balancer:
        """The balancing strategy in force."""
        ...

    @property
    def scaling(self) -> Sequence[ScalingEvent]:
        """Recent pool size changes, oldest first."""
        ...

    @property
    def stalls(self) -> Sequence[StallView]:
        """Recent event-loop stalls and their culprits, oldest first."""
        ...

    @property
    def decisions(self) -> Sequence[Decision]:
        """The autoscaler's recent decisions, oldest first."""
        ...

    @property
    def alerts(self) -> AlertBook:
        """Alerts, active and recent."""
        ...

    @property
    def gauges(self) -> Gauges:
        """Rates, pool latency, DLQ growth and loop lag, as of the last health tick."""
        ...

    @property
    def last_event_seq(self) -> int:
        """Sequence number of the newest event (0 before the first)."""
        ...

    def autoscaler_view(self, now: float) -> AutoscalerView:
        """The autoscaler's newest decision and how its forecast compares."""
        ...
