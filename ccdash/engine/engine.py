"""The Engine: a thin front over the parts it owns.

Lifecycle, publish/join and `snapshot()` live here, the operator commands in
`OperatorCommands` (commands.py); the work is done by the parts, each in its own
module with one reason to change:

- `Dispatcher` (dispatcher.py): slot accounting and the balancer;
- `Pool` (pool.py): starts, drains, fails and replaces consumers; scaling, rolling updates;
- `HealthMonitor` (health.py) and its `Gauges` (gauges.py): the steady tick;
- `HandlerGuards` (guards.py): circuit breakers and the rate limit;
- `EventLog`, `AlertBook`, `Joiners`, `Autoscaler`, `RuleEvaluator` (own modules).

No part imports this module: consumers report through Protocols in consumer.py;
the rules and the snapshot builder read an `EngineView` (reading.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ccdash.brokers import open_broker
from ccdash.brokers.base import Broker, QueueFull, check_publish_args
from ccdash.brokers.memory import MemoryBroker
from ccdash.clock import Clock, MonotonicClock
from ccdash.engine.alerts import AlertBook
from ccdash.engine.autoscaler import Autoscaler
from ccdash.engine.balancers import Balancer
from ccdash.engine.commands import OperatorCommands
from ccdash.engine.config import EngineConfig
from ccdash.engine.consumer import Consumer
from ccdash.engine.consumer_context import BatchHandler, Handler
from ccdash.engine.dispatcher import Dispatcher
from ccdash.engine.events import Event, EventKind, EventLog
from ccdash.engine.gauges import Gauges
from ccdash.engine.guards import HandlerGuards
from ccdash.engine.health import HealthMonitor
from ccdash.engine.joiners import Joiners
from ccdash.engine.pool import Pool
from ccdash.engine.rules import RuleEvaluator
from ccdash.engine.snapshot import AutoscalerView, Decision, ScalingEvent, Snapshot, StallView
from ccdash.engine.states import Severity
from ccdash.engine.tasks import EngineTasks, close_broker
from ccdash.engine.views import build_snapshot
from ccdash.text import counted


class EngineStopped(RuntimeError):
    """The engine is not running (not started yet, or shut down)."""


class Engine(OperatorCommands):
    """Competing consumers on one broker. Use as `async with Engine(cfg, handler=h):`."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        broker: Broker | str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = cfg = config or EngineConfig()
        if cfg.consumers > 0 and handler is None and batch_handler is None:
            raise ValueError("consumers > 0 needs a handler (or consumers=0 to only publish)")
        self.clock: Clock = clock or MonotonicClock()
        self.rng = random.Random(cfg.seed)
        self._owns_broker = not isinstance(broker, Broker)
        if isinstance(broker, Broker):
            self.broker: Broker = broker
        else:
            # Read ahead about what the consumers can hold, as `ccdash worker` does: a
            # deeper buffer would sit in front of work handed back by a failed consumer.
            self.broker = open_broker(
                broker or "memory",
                cfg.queue_config(self.rng),
                clock=self.clock,
                read_ahead=max(16, cfg.consumers * cfg.holding_limit),
            )
        now = self.clock.now
        self.log = EventLog(now)
        self.emit = self.log.emit
        self.broker.on_event = self._broker_event
        self.alerts = AlertBook(now, self.log.alert_changed)
        self.joiners = Joiners(self.clock, self.broker.outstanding)
        consumers: dict[str, Consumer] = {}
        self.dispatcher = Dispatcher(self.broker, consumers, self.joiners, cfg.balancer, self.rng)
        self.guards = HandlerGuards(self.clock, self.broker, self.emit, self.alerts, cfg)
        self.gauges = Gauges(now())
        self.pool = Pool(
            cfg,
            self.clock,
            self.broker,
            consumers,
            self.dispatcher,
            self.guards,
            self.joiners,
            self.emit,
            self.alerts,
            self.gauges.latency,
            handler,
            batch_handler,
        )
        self.autoscaler = Autoscaler(
            cfg, self.pool, self.broker.stats, self.emit, now(), lambda: self.dispatcher.paused
        )
        self.rules = RuleEvaluator(self, cfg.rules())
        self.health = HealthMonitor(
            self.clock,
            self.pool,
            self.broker,
            self.gauges,
            self.emit,
            self.alerts,
            interval=cfg.heartbeat_interval,
            timeout=cfg.heartbeat_timeout,
            handler_timeout=cfg.handler_timeout,
            hooks=(self.rules.evaluate, self.joiners.on_tick, self.autoscaler.on_tick),
        )
        self.tasks = EngineTasks(self.clock, self.emit)
        self.running = False
        self.stopping = False
        self._stopped = False
        # publish_nowait of a broker that stores what it takes (the process is the
        # store), while publishing is open: `publish`'s common case. None otherwise.
        self._put_now: Callable[[Any], str] | None = (
            self.broker.publish_nowait if self.broker.stores_on_publish_nowait else None
        )
        self.leftover = 0  # messages still queued when the engine stopped

    # -- lifecycle ----------------------------------------------------------

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the consumers, the dispatcher and the health monitor."""
        if self.running or self._stopped:
            raise EngineStopped("an engine starts once")
        self.guards.start()
        await self.broker.open()
        self.broker.stall_guard = self.health.vouched_until
        # The watchdog naming what blocks the loop measures real time only.
        real = isinstance(self.clock, MonotonicClock)
        self.health.begin(self.pool.running_delivery if real else None)
        await self.tasks.open()
        self.running = True
        self.pool.start(self.tasks.spawn)
        self.tasks.spawn(self.dispatcher.run(), "ccdash-dispatcher")
        self.tasks.spawn(self.health.run(), "ccdash-health")
        self.emit(
            EventKind.ENGINE_STARTED,
            f"engine started with {counted(self.desired, 'consumer')}",
            broker=self.broker.url,
            balancer=self.balancer.name,
        )

    def cut_grace(self) -> None:
        """Wait no longer for the handlers in progress of a `stop` under way (a second
        Ctrl-C): they are cancelled now and their messages handed back."""
        self.pool.cut_grace()

    async def stop(self, grace: float | None = None) -> None:
        """Two-phase shutdown: stop intake, grace for handlers, then cancel. Idempotent.
        `grace` overrides `config.shutdown_grace` for this stop (0: cancel at once)."""
        self._put_now = None
        if self._stopped or not self.running:
            self._stopped = True
            return
        self._stopped = True
        self.stopping = True
        self.dispatcher.stopping = True
        try:
            await self.pool.shutdown(grace if grace is not None else self.config.shutdown_grace)
        finally:  # the broker failing there (a full disk) still ends every task, wakes joiners
            self.health.stop()
            self.broker.stall_guard = None
            self.running = False
            try:
                await self.tasks.close()
            finally:  # (they resume at stop's next await, so after what follows here)
                self.joiners.wake(error=EngineStopped("engine stopped"))
        stats = self.broker.stats()
        self.leftover = stats.ready + stats.delayed + stats.in_flight
        note = ""
        if self.leftover and isinstance(self.broker, MemoryBroker):
            note = "; the memory broker's contents end with the process"
        self.emit(
            EventKind.ENGINE_STOPPED,
            f"engine stopped; {counted(self.leftover, 'message')} still queued{note}",
            leftover=self.leftover,
        )
        if self._owns_broker and not isinstance(self.broker, MemoryBroker):
            await close_broker(self.clock, self.broker)

    # -- publishing and waiting ---------------------------------------------

    async def publish(self, body: Any, priority: int = 0, dedup_id: str | None = None) -> str:
        """Accept a message (waits for room on a bounded queue); returns its id."""
        put = self._put_now
        if put is None or type(priority) is not int or priority or dedup_id is not None:
            return await self._publish(body, priority, dedup_id)  # not the common case
        try:
            mid = put(body)
        except QueueFull:  # backpressure: wait for room
            mid = await self.broker.publish(body)
        dispatcher = self.dispatcher
        if dispatcher.direct and (dispatcher.room_total > 0 or dispatcher.spare):
            dispatcher.dispatch_nowait(None)
        return mid

    async def _publish(self, body: Any, priority: int, dedup_id: str | None) -> str:
        """`publish` the long way: a priority or dedup id, a durable or remote broker."""
        if self._stopped:  # (set first by stop(), with `stopping`)
            raise EngineStopped("the engine is shutting down; publishing is closed")
        check_publish_args(priority, dedup_id)
        broker = self.broker
        if not broker.stores_on_publish_nowait:
            # A durable or remote broker: return once it has stored the message (a
            # queued-but-unsent one would be lost with the process). It wakes the parked
            # dispatcher, which leases it, so the publisher waits for one round trip, not two.
            return await broker.publish(body, priority=priority, dedup_id=dedup_id)
        try:
            mid = broker.publish_nowait(body, priority=priority, dedup_id=dedup_id)
        except QueueFull:  # backpressure: wait for room
            mid = await broker.publish(body, priority=priority, dedup_id=dedup_id)
        dispatcher = self.dispatcher
        if dispatcher.direct and (dispatcher.room_total > 0 or dispatcher.spare):
            dispatcher.dispatch_nowait(None)
        return mid

    async def publish_many(self, bodies: Sequence[Any], priority: int = 0) -> list[str]:
        """Accept several messages at once; returns their ids once all are stored
        (one group commit on a durable broker, one round trip on a remote one)."""
        if self.stopping or self._stopped:
            raise EngineStopped("the engine is shutting down; publishing is closed")
        check_publish_args(priority, None)
        ids = await self.broker.publish_many(bodies, priority=priority)
        if (self.dispatcher.room_total > 0 or self.dispatcher.spare) and not self.dispatcher.paused:
            await self.dispatcher.dispatch(None)
        return ids

    async def join(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - contract
        """Wait until every published message is acked or dead-lettered."""
        await self.joiners.wait(timeout)

    def check_joiners(self) -> None:
        """Wake joiners if all is settled (e.g. by other workers on a shared broker)."""
        self.joiners.check()

    # -- events -------------------------------------------------------------

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Call `fn` with every future event (log file, dashboard)."""
        self.log.add_listener(fn)

    def _broker_event(self, kind: str, fields: dict[str, Any]) -> None:
        ev = self.log.from_broker(kind, fields)
        if ev.kind == EventKind.UNDECODABLE:
            self.alerts.fire("undecodable-entry", Severity.WARNING, ev.message)
        elif ev.kind == EventKind.STORE_BUSY:
            self.alerts.fire(EventKind.STORE_BUSY, Severity.WARNING, ev.message)
        elif ev.kind == EventKind.STORE_RECOVERED:
            self.alerts.resolve(EventKind.STORE_BUSY)

    # -- reading (the EngineView the rules and the snapshot builder see) ---------

    def snapshot(
        self,
        *,
        max_leases: int = 200,
        max_dead: int = 200,
        max_alerts: int = 50,
        history: bool = False,
    ) -> Snapshot:
        """The engine's state now, frozen. `history` adds the autoscaler's recent
        decisions and all-time latencies (for reports and exposition)."""
        return build_snapshot(
            self, max_leases=max_leases, max_dead=max_dead, max_alerts=max_alerts, history=history
        )

    def consumer_ids(self, *, include_draining: bool = False) -> list[str]:
        """Ids of the running consumers, oldest first."""
        return self.pool.ids(include_draining=include_draining)

    @property
    def consumers(self) -> Mapping[str, Consumer]:
        """Running consumers (not ended), oldest first."""
        return self.pool.consumers

    @property
    def ended(self) -> Sequence[Consumer]:
        """Recently failed or stopped consumers, newest last."""
        return self.pool.ended

    @property
    def desired(self) -> int:
        """The pool size the engine aims for."""
        return self.pool.desired

    @property
    def failovers(self) -> int:
        """Consumers failed and failed over, all-time."""
        return self.pool.failovers

    @property
    def autoscale(self) -> bool:
        """Whether the autoscaler sizes the pool."""
        return self.autoscaler.enabled

    @property
    def paused(self) -> bool:
        """Whether consumption is paused."""
        return self.dispatcher.paused

    @property
    def balancer(self) -> Balancer:
        """The balancing strategy in force."""
        return self.dispatcher.balancer

    @property
    def scaling(self) -> Sequence[ScalingEvent]:
        """Recent pool size changes, oldest first."""
        return self.pool.scaling

    @property
    def stalls(self) -> Sequence[StallView]:
        """Recent event-loop stalls and their culprits, oldest first."""
        return self.health.stalls

    @property
    def decisions(self) -> Sequence[Decision]:
        """The autoscaler's recent decisions, oldest first."""
        return self.autoscaler.decisions

    @property
    def events(self) -> Sequence[Event]:
        """The newest events, oldest first (bounded)."""
        return self.log.buffer

    @property
    def last_event_seq(self) -> int:
        """Sequence number of the newest event (0 before the first)."""
        return self.log.last_seq

    def autoscaler_view(self, now: float) -> AutoscalerView:
        """The autoscaler's newest decision and how its forecast compares."""
        return self.autoscaler.view(now)

    @property
    def handler(self) -> Handler | None:
        """The handler new consumers run (a rolling update replaces it)."""
        return self.pool.handler

    @handler.setter
    def handler(self, handler: Handler | None) -> None:
        self.pool.handler = handler

    @property
    def batch_handler(self) -> BatchHandler | None:
        """The batch handler consumers run when batch_size > 1."""
        return self.pool.batch_handler

    @batch_handler.setter
    def batch_handler(self, handler: BatchHandler | None) -> None:
        self.pool.batch_handler = handler

    @property
    def version(self) -> str:
        """The handler version new consumers run."""
        return self.pool.version


__all__ = ["Engine", "EngineStopped"]
