"""The operator commands: what the dashboard, the drills and the CLI ask of a running engine.

A mixin of the Engine: each command acts on the parts the Engine owns (pool,
dispatcher, broker, alerts, autoscaler) and records what it did in the event log.
It changes when a command is added or changes; lifecycle and publishing stay in
engine.py. It reads the parts through the attributes declared below and never
imports the Engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from ccdash.brokers.base import Broker
from ccdash.engine.alerts import AlertBook
from ccdash.engine.autoscaler import Autoscaler
from ccdash.engine.consumer_context import Handler
from ccdash.engine.dispatcher import Dispatcher
from ccdash.engine.events import Emit, EventKind
from ccdash.engine.pool import Pool
from ccdash.text import counted


class OperatorCommands:
    """Operator commands over the Engine's parts (the Engine sets these attributes)."""

    broker: Broker
    pool: Pool
    dispatcher: Dispatcher
    alerts: AlertBook
    autoscaler: Autoscaler
    emit: Emit

    async def kill_consumer(self, cid: str) -> int:
        """Crash it now; its leases go back to the queue at once. Returns how many."""
        return await self.pool.fail(self.pool.get(cid), "killed")

    async def hang_consumer(self, cid: str) -> None:
        """Stop its heartbeats and stall it; the health check must catch it."""
        c = self.pool.get(cid)
        c.hung = True
        self.emit(EventKind.CONSUMER_HUNG, f"{cid} hung (heartbeats stopped)", consumer=cid)

    def slow_consumer(self, cid: str, factor: float) -> None:
        """Make its handling `factor` times slower (1.0 restores it)."""
        c = self.pool.get(cid)
        c.slow_factor = max(1.0, float(factor))
        self.emit(
            EventKind.CONSUMER_SLOWED,
            f"{cid} slowed x{c.slow_factor:g}",
            consumer=cid,
            factor=c.slow_factor,
        )

    async def scale_to(self, n: int, *, source: str = "operator", reason: str = "") -> int:
        """Resize the pool now (within min/max); returns the new size."""
        return await self.pool.scale_to(n, source=source, reason=reason)

    async def rolling_update(
        self, handler: Handler, *, max_unavailable: int = 1, version: str | None = None
    ) -> str:
        """Replace every consumer with one running `handler`, `max_unavailable` at a time:
        start the new one, then drain the old (it finishes or hands back what it holds).
        Returns the new version label."""
        return await self.pool.rolling_update(handler, max_unavailable, version)

    def set_balancer(self, name: str) -> None:
        """Switch the balancing strategy; takes effect from the next pick."""
        self.dispatcher.set_balancer(name)
        self.emit(EventKind.BALANCER_SWITCHED, f"balancer is now {name}", balancer=name)

    def set_weight(self, cid: str, weight: int) -> None:
        """Set a consumer's weight for the weighted balancer (default 1); it counts
        from the next dispatch decision."""
        if weight < 0:
            raise ValueError("weight must not be negative")
        self.dispatcher.set_weight(self.pool.get(cid), int(weight))
        self.emit(EventKind.WEIGHT_SET, f"{cid} weight {weight}", consumer=cid, weight=weight)

    async def pause(self) -> None:
        """Stop handing out work (publishing continues; the backlog grows)."""
        self.dispatcher.paused = True
        self.emit(EventKind.CONSUMPTION_PAUSED, "consumption paused")

    async def resume(self) -> None:
        """Hand out work again."""
        self.dispatcher.paused = False
        self.dispatcher.room_changed()
        self.emit(EventKind.CONSUMPTION_RESUMED, "consumption resumed")
        await self.dispatcher.dispatch(None)

    async def redrive(self, ids: Sequence[str] | None = None) -> int:
        """DLQ -> queue (all, or these ids), attempts reset."""
        _check_ids(ids)
        n = await self.broker.redrive(ids)
        self.emit(EventKind.DLQ_REDRIVEN, f"{counted(n, 'dead letter')} redriven", count=n)
        await self.dispatcher.dispatch(None)
        return n

    async def purge_dead(self, ids: Sequence[str] | None = None) -> int:
        """Delete dead letters for good (all, or these ids)."""
        _check_ids(ids)
        n = await self.broker.purge(ids)
        self.emit(EventKind.DLQ_PURGED, f"{counted(n, 'dead letter')} purged", count=n)
        return n

    def acknowledge_alert(self, alert_id: int) -> bool:
        """Mark an alert as seen by an operator."""
        return self.alerts.acknowledge(alert_id)

    def set_autoscale(self, on: bool) -> None:
        """Let the autoscaler resize the pool (or stop it)."""
        self.autoscaler.enabled = on
        self.emit(EventKind.AUTOSCALE_SWITCHED, f"autoscaler {'on' if on else 'off'}", on=on)


def _check_ids(ids: object) -> None:
    """One id passed where a list belongs would be read as its characters."""
    if isinstance(ids, str | bytes):
        raise TypeError(
            f"ids must be a list of message ids, not one string: ids=[{ids!r}], not ids={ids!r}"
        )


__all__ = ["OperatorCommands"]
