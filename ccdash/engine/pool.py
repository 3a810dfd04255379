"""The consumer pool: starts, drains, fails and replaces consumers; scaling and
rolling updates. It reports consumers' comings and goings to the dispatcher,
which alone does the slot accounting."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from typing import Any

from ccdash.aio import wait_tasks
from ccdash.brokers.base import (
    REASON_CONSUMER_FAILED,
    REASON_RELEASED,
    Broker,
    BrokerError,
    Delivery,
    ReceiptRejected,
)
from ccdash.clock import Clock
from ccdash.engine.alerts import AlertBook
from ccdash.engine.batch_consumer import BatchConsumer
from ccdash.engine.config import EngineConfig
from ccdash.engine.consumer import Consumer
from ccdash.engine.consumer_context import BatchHandler, ConsumerContext, Handler
from ccdash.engine.dispatcher import Dispatcher
from ccdash.engine.events import Emit, EventKind
from ccdash.engine.guards import HandlerGuards
from ccdash.engine.joiners import Joiners
from ccdash.engine.metrics import LatencyHistogram
from ccdash.engine.snapshot import ScalingEvent
from ccdash.engine.states import ConsumerState, Severity
from ccdash.text import counted

Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]  # the engine's


class RestartBudget:
    """The restart intensity limit: at most `limit` restarts within `window` seconds."""

    def __init__(self, limit: int, window: float, now: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self._now = now
        self._restarts: deque[float] = deque()

    def take(self) -> bool:
        """Within the limit? Records the restart if so."""
        now = self._now()
        while self._restarts and now - self._restarts[0] > self.window:
            self._restarts.popleft()
        if len(self._restarts) >= self.limit:
            return False
        self._restarts.append(now)
        return True


def next_version(version: str) -> str:
    """The label after `version`: v1 -> v2; anything else gets `+1`."""
    digits = version.lstrip("v")
    return f"v{int(digits) + 1}" if digits.isdigit() else f"{version}+1"


class Pool:
    """The engine's consumers: the live ones by id (oldest first) and the recently ended."""

    def __init__(
        self,
        config: EngineConfig,
        clock: Clock,
        broker: Broker,
        consumers: dict[str, Consumer],
        dispatcher: Dispatcher,
        guards: HandlerGuards,
        joiners: Joiners,
        emit: Emit,
        alerts: AlertBook,
        latency: LatencyHistogram,
        handler: Handler | None,
        batch_handler: BatchHandler | None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.broker = broker
        self.dispatcher = dispatcher
        self.joiners = joiners
        self.emit = emit
        self.alerts = alerts
        self.latency = latency  # the pool's histogram, which each consumer's feeds
        self.handler = handler
        self.batch_handler = batch_handler
        self.version = "v1"
        self.consumers = consumers  # not ended, oldest first; the dispatcher reads it too
        self.ended: deque[Consumer] = deque(maxlen=50)  # failed/stopped, newest last
        self._ordinals = itertools.count(1)
        self.desired = config.consumers
        self.failovers = 0
        self.to_replace = 0  # failed consumers awaiting a replacement
        self.stopping = False
        self.grace_until = float("inf")  # shutdown waits for handlers until then
        self.restarts = RestartBudget(config.restart_limit, config.restart_window, clock.now)
        self.scaling: deque[ScalingEvent] = deque(maxlen=100)
        self.scaling_counts: Counter[tuple[str, str]] = Counter()  # (direction, reason)
        self.guards = guards
        self._spawn: Spawn | None = None

    def context(self) -> ConsumerContext[Consumer]:
        """What every consumer shares (built when the first one starts: the handlers
        may be tapped until then)."""
        cfg = self.config
        return ConsumerContext(
            clock=self.clock,
            broker=self.broker,
            ack_nowait=getattr(self.broker, "ack_nowait", None),
            slots=self.dispatcher,
            guards=self.guards,
            reports=self,
            batch_handler=self.batch_handler,
            holding_limit=cfg.holding_limit,
            batch_size=cfg.batch_size,
            batch_linger=cfg.batch_linger,
            startup_delay=cfg.startup_delay,
            handler_timeout=cfg.handler_timeout,
            latency=self.latency,
        )

    def start(self, spawn: Spawn) -> None:
        """Start the configured consumers, each a task made by `spawn`."""
        self._spawn = spawn
        self._ctx = self.context()
        for _ in range(self.desired):
            self.start_consumer()

    def get(self, cid: str) -> Consumer:
        """A running consumer by id; KeyError naming it otherwise."""
        c = self.consumers.get(cid)
        if c is None:
            raise KeyError(f"no running consumer {cid!r}")
        return c

    def live(self) -> list[Consumer]:
        """Running consumers that are not draining, oldest first."""
        return [c for c in self.consumers.values() if not c.draining]

    # -- one consumer's life ------------------------------------------------------

    def start_consumer(
        self, handler: Handler | None = None, version: str | None = None
    ) -> Consumer:
        """Start one more consumer (the current handler and version by default)."""
        n = next(self._ordinals)
        kind = BatchConsumer if self._ctx.batching else Consumer
        c = kind(self._ctx, f"c{n}", n, handler or self.handler, version or self.version)
        self.consumers[c.id] = c
        assert self._spawn is not None
        c.task = self._spawn(self._run(c), f"ccdash-{c.id}")
        self.dispatcher.admit(c)
        self.emit(EventKind.CONSUMER_STARTED, f"{c.id} started", consumer=c.id, version=c.version)
        return c

    async def warmed(self, c: Consumer) -> None:
        """A cold consumer finished starting: it takes work from now on."""
        c.warm = True
        c.last_beat = self.clock.now()
        self.dispatcher.admit(c)
        self.emit(EventKind.CONSUMER_READY, f"{c.id} warmed up", consumer=c.id)
        await self.dispatcher.dispatch(c)

    def ack_rejected(self, c: Consumer, d: Delivery) -> None:
        """The lease ran out and the message went to someone else: c's work is a duplicate."""
        self.emit(
            EventKind.ACK_REJECTED,
            f"{c.id}: lease of {d.message_id} had expired",
            consumer=c.id,
            message_id=d.message_id,
        )

    def dead_lettered(self, c: Consumer, d: Delivery, error: str) -> None:
        """c's nack sent d to the DLQ."""
        self.emit(
            EventKind.DEAD_LETTERED,
            f"{d.message_id} dead-lettered after {counted(d.attempt, 'attempt')}: {error}",
            message_id=d.message_id,
            error=error,
        )
        self.joiners.check()

    async def _run(self, c: Consumer) -> None:
        try:
            await c.run()  # cancelled by fail or shutdown, which clean up
        except Exception as exc:  # a bug in the loop or the handler wrapper: fail just this one
            if isinstance(exc, BrokerError) and not isinstance(exc, ReceiptRejected):
                # Its ack, nack or refill could not be stored (a full disk): the broker
                raise  # failed, not this consumer; a replacement would fail the same way.
            await self.fail(c, f"consumer crashed: {exc!r}")  # (a lease lost: one delivery's)
            return
        if c.id in self.consumers:  # returned: drained
            self.retire(c, ConsumerState.STOPPED, c.note or "drained")
            self.emit(EventKind.CONSUMER_STOPPED, f"{c.id} drained and stopped", consumer=c.id)

    async def begin_drain(self, c: Consumer) -> None:
        """Stop giving it work; hand back what it has not started; it stops when done."""
        if c.draining:
            return
        self.dispatcher.withdraw(c)
        c.draining = True
        buffered = self.dispatcher.take_back(c)
        if buffered:
            await self.broker.release([d.receipt for d in buffered], REASON_RELEASED)
            await self.dispatcher.dispatch(None)
        c.wake()

    def retire(self, c: Consumer, state: ConsumerState, note: str) -> None:
        """Move c to the ended list (failed or stopped)."""
        if self.consumers.pop(c.id, None) is None:
            return
        self.dispatcher.withdraw(c)
        c.hist.digest()  # what it timed reaches the pool's histogram
        c.state = state
        c.note = note
        c.ended_at = self.clock.now()
        self.ended.append(c)

    async def fail(self, c: Consumer, reason: str) -> int:
        """Mark a consumer failed, stop it, and give its leases to the others at once."""
        if c.id not in self.consumers:
            return 0
        self.retire(c, ConsumerState.FAILED, reason)
        if c.task is not None and not c.task.done() and c.task is not asyncio.current_task():
            c.task.cancel()
        released = await self.broker.release_holder(c.id, REASON_CONSUMER_FAILED, reason)
        self.dispatcher.forget(c)
        self.failovers += 1
        self.to_replace += 1
        self.emit(
            EventKind.CONSUMER_FAILED,
            f"{c.id} failed ({reason}); {counted(released, 'lease')} released",
            consumer=c.id,
            reason=reason,
            released=released,
        )
        self.alerts.fire(
            EventKind.CONSUMER_FAILED, Severity.WARNING, f"{c.id} failed: {reason}", key=c.id
        )
        await self.dispatcher.dispatch(None)
        self.joiners.check()
        return released

    def replace_failed(self) -> None:
        """Supervisor: start replacements for failed consumers, within the restart limit."""
        while self.to_replace > 0 and not self.stopping:
            if len(self.live()) >= self.desired:
                self.to_replace = 0
                break
            if not self.restarts.take():
                msg = (
                    f"restart limit hit: {counted(self.config.restart_limit, 'restart')} within "
                    f"{self.config.restart_window}s; not restarting"
                )
                if not self.alerts.is_active(EventKind.RESTART_LIMIT):
                    self.emit(EventKind.RESTART_LIMIT, msg)
                self.alerts.fire(EventKind.RESTART_LIMIT, Severity.CRITICAL, msg)
                return
            self.to_replace -= 1
            c = self.start_consumer()
            for key in self.alerts.active_keys(EventKind.CONSUMER_FAILED):
                self.alerts.resolve(EventKind.CONSUMER_FAILED, key)
                self.emit(
                    EventKind.CONSUMER_REPLACED,
                    f"{key} replaced by {c.id}",
                    failed=key,
                    consumer=c.id,
                )
                break
        if self.to_replace == 0 and self.alerts.is_active(EventKind.RESTART_LIMIT):
            self.alerts.resolve(EventKind.RESTART_LIMIT)

    # -- the whole pool -------------------------------------------------------------

    async def scale_to(self, n: int, *, source: str = "operator", reason: str = "") -> int:
        """Resize the pool now (within min/max); returns the new size."""
        cfg = self.config
        n = max(cfg.min_consumers, min(cfg.max_consumers, int(n)))
        before = self.desired
        self.desired = n
        live = self.live()
        for _ in range(n - len(live)):
            self.start_consumer()
        if len(live) > n:
            # Drain the idlest: fewest held, newest first among equals.
            idlest = sorted(live, key=lambda c: (c.held, -c.ordinal))[: len(live) - n]
            for c in idlest:
                await self.begin_drain(c)
        self.to_replace = 0
        if n != before:
            direction = "up" if n > before else "down"
            self.scaling_counts[(direction, reason or source)] += 1
            self.scaling.append(
                ScalingEvent(self.clock.now(), source, before, n, reason or "operator request")
            )
            why = source  # the reason too, once: "autoscaler: backlog", "drill scale to 5"
            if reason:
                why = reason if reason.startswith(source) else f"{source}: {reason}"
            self.emit(
                EventKind.POOL_SCALED,
                f"pool {before} -> {n} ({why})",
                source=source,
                from_size=before,
                to_size=n,
                reason=reason,
            )
        return n

    async def rolling_update(
        self, handler: Handler, max_unavailable: int, version: str | None
    ) -> str:
        """Replace every consumer with one running `handler`, `max_unavailable` at a time:
        start the new one, then drain the old. Returns the new version label."""
        if max_unavailable < 1:
            raise ValueError("max_unavailable must be at least 1")
        version = version or next_version(self.version)
        self.handler = handler
        self.version = version
        old = [c for c in self.live() if c.version != version]
        self.emit(
            EventKind.ROLLING_UPDATE_STARTED,
            f"rolling update to {version}: {counted(len(old), 'consumer')}",
            version=version,
            consumers=len(old),
        )
        for i in range(0, len(old), max_unavailable):
            group = [c for c in old[i : i + max_unavailable] if c.id in self.consumers]
            for _ in group:
                self.start_consumer()
            for c in group:
                await self.begin_drain(c)
            await self._await_retired(group, self.config.shutdown_grace)
        self.emit(
            EventKind.ROLLING_UPDATE_FINISHED,
            f"rolling update to {version} finished",
            version=version,
        )
        return version

    async def _await_retired(self, group: list[Consumer], grace: float) -> None:
        """Wait (up to `grace`) for draining consumers to stop; then cut them off."""
        await wait_tasks(self.clock, [c.task for c in group if c.task is not None], grace)
        for c in group:
            if c.id in self.consumers:  # over the grace: stop it, hand its work back
                if c.task is not None:
                    c.task.cancel()
                await self.broker.release_holder(c.id, REASON_RELEASED, "drain timed out")
                self.retire(c, ConsumerState.STOPPED, "drain timed out")
                await self.dispatcher.dispatch(None)

    async def shutdown(self, grace: float) -> None:
        """Two phases: drain everyone and give handlers `grace` seconds to finish;
        then cancel what still runs and release its leases."""
        self.stopping = True
        clock = self.clock
        for c in list(self.consumers.values()):
            await self.begin_drain(c)
        self.grace_until = min(self.grace_until, clock.now() + grace)
        while any(c.current for c in self.consumers.values()) and clock.now() < self.grace_until:
            await clock.sleep(min(0.05, max(0.0, self.grace_until - clock.now())))
        # Every consumer is stopped and its leases tried even if the broker fails on one
        # (a full disk): those it could not hand back return when their leases run out.
        failure: Exception | None = None
        for c in list(self.consumers.values()):
            if c.task is not None and not c.task.done():
                c.task.cancel()
            try:
                await self.broker.release_holder(c.id, REASON_RELEASED, "engine shut down")
            except Exception as exc:
                failure = failure or exc
            self.retire(c, ConsumerState.STOPPED, "engine shut down")
        if failure is not None:
            raise failure

    def cut_grace(self) -> None:
        """Wait no longer for handlers in progress (a second Ctrl-C): cancel them now."""
        self.grace_until = float("-inf")

    def running_delivery(self, task: asyncio.Task[Any] | None) -> tuple[str, str] | None:
        """The consumer whose task this is, and the message it handles. Called by the
        stall sampler's thread while the loop is blocked (so nothing changes meanwhile)."""
        for c in list(self.consumers.values()):
            if c.task is task:
                current = list(c.current)
                return c.id, current[0].message_id if current else ""
        return None

    def ids(self, *, include_draining: bool = False) -> list[str]:
        """Ids of the running consumers, oldest first."""
        return [c.id for c in self.consumers.values() if include_draining or not c.draining]


__all__ = ["Pool", "RestartBudget", "next_version"]
