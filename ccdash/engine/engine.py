"""The Engine: a pool of competing consumers on one broker, and its commands.

Work flows publish -> broker -> dispatch (the balancer picks a consumer with
room) -> consumer buffer -> handler -> ack/nack. Dispatch runs inline when a
consumer frees a slot or a message is published; one dispatcher task parks on
the broker for what arrives otherwise (retries coming due, expired leases).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ccdash.aio import cancel_and_wait, run_within
from ccdash.brokers import open_broker
from ccdash.brokers.base import (
    REASON_CONSUMER_FAILED,
    REASON_RELEASED,
    Broker,
    Delivery,
    QueueConfig,
    QueueFull,
    check_publish_args,
)
from ccdash.brokers.memory import MemoryBroker
from ccdash.clock import Clock, MonotonicClock
from ccdash.engine.alerts import CRITICAL, WARNING, AlertBook
from ccdash.engine.autoscaler import Autoscaler
from ccdash.engine.balancers import Balancer, make_balancer
from ccdash.engine.config import EngineConfig
from ccdash.engine.consumer import BatchHandler, Consumer, Handler
from ccdash.engine.guards import CircuitBreaker, TokenBucket
from ccdash.engine.health import STALL_MIN, HealthMonitor
from ccdash.engine.metrics import empty_counts
from ccdash.engine.snapshot import (
    DRAINING,
    ENDED_STATES,
    FAILED,
    STOPPED,
    Event,
    ScalingEvent,
    Snapshot,
)
from ccdash.engine.stall import BlockSampler
from ccdash.engine.views import build_snapshot

BROKER_CLOSE_DEADLINE = 30.0  # seconds closing a remote broker may take before it is left


class EngineStopped(RuntimeError):
    """The engine is not running (not started yet, or shut down)."""


class Engine:
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
            self.broker = open_broker(broker or "memory", self.queue_config(), clock=self.clock,
                                      read_ahead=max(16, cfg.consumers * cfg.holding_limit))
        self.broker.on_event = self._broker_event
        # Fast paths where the broker offers them (the memory broker never suspends).
        self.receive_nowait = getattr(self.broker, "receive_nowait", None)
        self.ack_nowait: Callable[[Any], None] | None = getattr(self.broker, "ack_nowait", None)
        self.handler = handler
        self.batch_handler = batch_handler
        self.version = "v1"
        self.balancer: Balancer = make_balancer(cfg.balancer, self.rng)
        self.consumers: dict[str, Consumer] = {}  # not ended
        self.ended: deque[Consumer] = deque(maxlen=50)  # failed/stopped, newest last
        self._ordinals = itertools.count(1)
        self.room_total = 0
        self.desired = cfg.consumers
        self.paused = False
        self.autoscale = cfg.autoscale
        self.failovers = 0
        self.to_replace = 0  # failed consumers awaiting a replacement
        self.scaling: deque[ScalingEvent] = deque(maxlen=100)
        self.scaling_counts: Counter[tuple[str, str]] = Counter()  # (direction, reason)
        self.retired_latency = empty_counts()  # all-time latency buckets of ended consumers
        self.retired_latency_sum = 0.0
        self.events: deque[Event] = deque(maxlen=1000)
        self._event_seq = itertools.count(1)
        self._listeners: list[Callable[[Event], None]] = []
        self.alerts = AlertBook(self.clock.now, self._on_alert)
        self.breakers: dict[str, CircuitBreaker] = {}
        self.bucket: TokenBucket | None = None
        self.guards_active = cfg.rate_limit is not None or cfg.breaker_threshold is not None
        self.health = HealthMonitor(self)
        self.autoscaler = Autoscaler(self)
        self._tg: asyncio.TaskGroup | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._joiners: list[asyncio.Future[None]] = []
        self._room_waiter: asyncio.Future[None] | None = None
        self.running = False
        self.stopping = False
        self._stopped = False
        self.leftover = 0  # messages still queued when the engine stopped
        self._sampler: BlockSampler | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # running tasks of the group
        self._tg_exit: asyncio.Future[Any] | None = None  # a group left to close by itself

    def queue_config(self) -> QueueConfig:
        """The broker settings this engine's config implies."""
        cfg = self.config
        return QueueConfig(
            visibility_timeout=cfg.visibility_timeout,
            max_attempts=cfg.max_attempts,
            backoff_base=cfg.backoff_base,
            backoff_max=cfg.backoff_max,
            capacity=cfg.capacity,
            dedup_window=cfg.dedup_window,
            rng=random.Random(self.rng.random()),
            max_body_bytes=cfg.max_body_bytes,
        )

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
        cfg = self.config
        if cfg.rate_limit is not None:
            self.bucket = TokenBucket(
                cfg.rate_limit, float(cfg.rate_burst or max(1, cfg.rate_limit)), self.clock.now()
            )
        await self.broker.open()
        self.health.alive_at = self.clock.now()
        self.broker.stall_guard = self.health.vouched_until
        if isinstance(self.clock, MonotonicClock):  # it watches real time only
            self._sampler = BlockSampler(asyncio.get_running_loop(),
                                         max(self.health.slack, STALL_MIN),
                                         self._running_delivery, self.health.blamed)
            self._sampler.start()
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self.running = True
        for _ in range(self.desired):
            self._start_consumer()
        self._loops = [
            self._spawn(self._dispatch_loop(), "ccdash-dispatcher"),
            self._spawn(self.health.run(), "ccdash-health"),
        ]
        self.emit("engine-started", f"engine started with {self.desired} consumers",
                  broker=self.broker.url, balancer=self.balancer.name)

    async def stop(self, grace: float | None = None) -> None:
        """Two-phase shutdown: stop intake, grace for handlers, then cancel. Idempotent.

        `grace` overrides `config.shutdown_grace` for this stop (0: cancel at once)."""
        if self._stopped or not self.running:
            self._stopped = True
            return
        self._stopped = True
        self.stopping = True
        clock = self.clock
        # Phase 1: no new work; hand back what is buffered; let handlers finish.
        for c in list(self.consumers.values()):
            await self._begin_drain(c)
        deadline = clock.now() + (grace if grace is not None else self.config.shutdown_grace)
        while any(c.current for c in self.consumers.values()) and clock.now() < deadline:
            await clock.sleep(min(0.05, max(0.0, deadline - clock.now())))
        # Phase 2: cancel whatever still runs and release its leases.
        for c in list(self.consumers.values()):
            if c.task is not None and not c.task.done():
                c.task.cancel()
            await self.broker.release_holder(c.id, REASON_RELEASED, "engine shut down")
            self._retire(c, STOPPED, "engine shut down")
        self.health.stop()
        if self._sampler is not None:
            self._sampler.stop()
        self.broker.stall_guard = None
        self.running = False
        assert self._tg is not None
        # Every task gets a deadline to end: one that swallows its cancellation (a
        # handler catching it, a client's timeout wrapper) is abandoned with a warning,
        # and the task group (which would wait for it for ever) is left to close by itself.
        left = await cancel_and_wait(clock, list(self._tasks), "engine stop")
        if left:
            names = ", ".join(sorted(t.get_name() for t in left if isinstance(t, asyncio.Task)))
            self.emit("tasks-abandoned", f"engine stopped without {len(left)} tasks that "
                      f"ignored cancellation: {names}", tasks=names)
            self._tg_exit = asyncio.ensure_future(self._tg.__aexit__(None, None, None))
            self._tg_exit.add_done_callback(lambda f: f.cancelled() or f.exception())
        else:
            await self._tg.__aexit__(None, None, None)
        stats = self.broker.stats()
        self.leftover = stats.ready + stats.delayed + stats.in_flight
        note = ""
        if self.leftover and isinstance(self.broker, MemoryBroker):
            note = "; the memory broker's contents end with the process"
        self.emit("engine-stopped",
                  f"engine stopped; {self.leftover} messages still queued{note}",
                  leftover=self.leftover)
        self._wake_joiners(error=EngineStopped("engine stopped"))
        if self._owns_broker and not isinstance(self.broker, MemoryBroker):
            await run_within(clock, self.broker.close(), BROKER_CLOSE_DEADLINE,
                             "closing the broker")

    # -- publishing and waiting ---------------------------------------------

    async def publish(self, body: Any, priority: int = 0, dedup_id: str | None = None) -> str:
        """Accept a message (waits for room on a bounded queue); returns its id."""
        if self.stopping or self._stopped:
            raise EngineStopped("the engine is shutting down; publishing is closed")
        if type(priority) is not int or priority or dedup_id is not None:  # not the default
            check_publish_args(priority, dedup_id)
        if not self.broker.stores_on_publish_nowait:
            # A durable or remote broker: return once it has stored the message (a
            # queued-but-unsent one would be lost with the process). It wakes the parked
            # dispatcher, which leases it, so the publisher waits for one round trip, not two.
            return await self.broker.publish(body, priority=priority, dedup_id=dedup_id)
        try:
            mid = self.broker.publish_nowait(body, priority=priority, dedup_id=dedup_id)
        except QueueFull:  # backpressure: wait for room
            mid = await self.broker.publish(body, priority=priority, dedup_id=dedup_id)
        if self.room_total > 0 and not self.paused:
            self.dispatch_nowait(None)
        return mid

    async def publish_many(self, bodies: Sequence[Any], priority: int = 0) -> list[str]:
        """Accept several messages at once; returns their ids once all are stored
        (one group commit on a durable broker, one round trip on a remote one)."""
        if self.stopping or self._stopped:
            raise EngineStopped("the engine is shutting down; publishing is closed")
        check_publish_args(priority, None)
        broker = self.broker
        ids = []
        for body in bodies:
            try:
                ids.append(broker.publish_nowait(body, priority=priority))
            except QueueFull:  # backpressure: store what we have, then wait for room
                await broker.flush()
                ids.append(await broker.publish(body, priority=priority))
        await broker.flush()
        if self.room_total > 0 and not self.paused:
            await self.dispatch(None)
        return ids

    async def join(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - contract
        """Wait until every published message is acked or dead-lettered."""
        if self._settled():
            return
        fut = asyncio.get_running_loop().create_future()
        self._joiners.append(fut)
        timer = None
        if timeout is not None:

            def expire() -> None:
                if not fut.done():
                    fut.set_exception(TimeoutError(f"join timed out after {timeout}s"))

            timer = self.clock.call_at(self.clock.now() + timeout, expire)
        try:
            await fut
        finally:
            if timer is not None:
                timer.cancel()
            if fut in self._joiners:
                self._joiners.remove(fut)

    def _settled(self) -> bool:
        return self.broker.outstanding() == 0

    def check_joiners(self) -> None:
        """Wake joiners if everything is settled (called as work completes)."""
        if self._joiners and self._settled():
            self._wake_joiners()

    def _wake_joiners(self, error: BaseException | None = None) -> None:
        for fut in self._joiners:
            if not fut.done():
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)
        self._joiners.clear()

    # -- dispatch -----------------------------------------------------------

    def free_slots(self, c: Consumer, n: int) -> bool:
        """A consumer finished `n` deliveries; True if it should be given more now."""
        before = c.room
        c.held -= n
        room = c.room
        if room != before:
            self.room_total += room - before
            self._room_changed()
        self._check_joiners_if_empty(c)
        return room > 0 and not self.paused and not self.stopping

    def _check_joiners_if_empty(self, c: Consumer) -> None:
        # While c still holds a delivery, something is outstanding: no joiner to wake
        # (the health tick checks anyway, for leases that expired into the DLQ unseen).
        if self._joiners and c.held <= 0:
            self.check_joiners()

    def refill(self, c: Consumer, n: int) -> bool:
        """The running consumer `c` finished `n` deliveries: free their slots and, on a
        broker that never suspends, refill it now. True if a `dispatch(c)` is still
        to be awaited."""
        if (self.room_total == 0 and self.receive_nowait is not None and not self.paused
                and not self.stopping and c.accepting):
            # Nobody else wants work, so the balancer has no choice to make: take
            # what c has room for straight from the broker (the per-message path at
            # prefetch 1).
            held = c.held - n
            if held > c.low:
                c.held = held
                return False
            want = c.limit - held
            got = self.receive_nowait([c.id] * want)
            c.held = held + len(got)
            c.take(got)
            if len(got) < want:  # the queue ran dry: c keeps the rest as room
                self.room_total += c.room
                self._room_changed()
                self._check_joiners_if_empty(c)
            return False
        if not self.free_slots(c, n):
            return False
        if self.receive_nowait is None:
            return True
        self.dispatch_nowait(c)
        return False

    def _reserve(self, hint: Consumer | None) -> list[Consumer]:
        """Pick who gets the next ready messages, as the balancer says, and reserve
        their slots: one entry per message (empty if nobody has room or nothing is ready)."""
        room = self.room_total
        if room <= 0 or self.paused or self.stopping:
            return []
        ready = self.broker.ready_count()
        if ready <= 0:
            return []
        if hint is not None and hint.room == room:  # the only hungry one: no choice
            k = min(room, ready, 256)
            hint.held += k
            self.room_total += hint.room - room
            return [hint] * k
        cands = [c for c in self.consumers.values() if c.room > 0]
        before = {c: c.room for c in cands}
        k = min(sum(c.limit - c.held for c in cands), ready, 256)
        picks = []
        pick = self.balancer.pick
        for _ in range(k):
            c = pick(cands)
            picks.append(c)
            c.held += 1
            if c.held >= c.limit:
                cands.remove(c)
        self.room_total += sum(c.room - r for c, r in before.items())
        return picks

    def _unreserve(self, picks: list[Consumer]) -> None:
        """Fewer messages than reserved slots: give the slots back."""
        for c in picks:
            r = c.room
            c.held -= 1
            self.room_total += c.room - r
        if picks and self._joiners:
            self.check_joiners()

    def dispatch_nowait(self, hint: Consumer | None) -> None:
        """`dispatch` on a broker that never suspends (`receive_nowait`): nothing runs
        between the balancer's picks and the hand-over, so every pick still accepts."""
        picks = self._reserve(hint)
        if picks:
            got = self.receive_nowait([c.id for c in picks])  # type: ignore[misc]
            for c, d in zip(picks, got, strict=False):
                c.give(d)
            if len(got) < len(picks):
                self._unreserve(picks[len(got):])

    async def dispatch(self, hint: Consumer | None) -> None:
        """Lease ready messages to hungry consumers, as the balancer picks."""
        if self.receive_nowait is not None:
            self.dispatch_nowait(hint)
            return
        picks = self._reserve(hint)
        if not picks:
            return
        broker = self.broker
        got = await broker.receive([c.id for c in picks])
        for c, d in zip(picks, got, strict=False):
            if c.accepting:
                c.give(d)
            else:  # failed or began draining while the receive was under way
                await broker.release([d.receipt], REASON_RELEASED)
                if c.id in self.consumers:
                    c.held -= 1
        if len(got) < len(picks):
            self._unreserve(picks[len(got):])

    async def _dispatch_loop(self) -> None:
        """Park on the broker while consumers have room; on room while they don't."""
        loop = asyncio.get_running_loop()
        while True:
            if self.room_total > 0 and not self.paused:
                await self.broker.wait_ready()
                await self.dispatch(None)
                await asyncio.sleep(0)  # let woken consumers run before the next round
            else:
                self._room_waiter = loop.create_future()
                try:
                    await self._room_waiter
                finally:
                    self._room_waiter = None

    def _room_changed(self) -> None:
        if self._room_waiter is not None and not self._room_waiter.done():
            self._room_waiter.set_result(None)

    # -- the pool -----------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A task in the engine's group, tracked until it ends (stop waits for those)."""
        assert self._tg is not None
        task = self._tg.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _start_consumer(
        self, handler: Handler | None = None, version: str | None = None
    ) -> Consumer:
        n = next(self._ordinals)
        c = Consumer(self, f"c{n}", n, handler or self.handler, version or self.version)
        self.consumers[c.id] = c
        self.room_total += c.room
        c.task = self._spawn(self._run_consumer(c), f"ccdash-{c.id}")
        self._room_changed()
        self.emit("consumer-started", f"{c.id} started", consumer=c.id, version=c.version)
        return c

    async def consumer_warmed(self, c: Consumer) -> None:
        """A cold consumer finished starting: it takes work from now on."""
        c.warm = True
        c.last_beat = self.clock.now()
        self.room_total += c.room
        self._room_changed()
        self.emit("consumer-ready", f"{c.id} warmed up", consumer=c.id)
        await self.dispatch(c)

    async def _run_consumer(self, c: Consumer) -> None:
        try:
            await c.run()  # cancelled by fail_consumer or shutdown, which clean up
        except Exception as exc:  # a bug in the loop or the handler wrapper: fail just this one
            await self.fail_consumer(c, f"consumer crashed: {exc!r}")
            return
        if c.id in self.consumers:  # returned: drained
            self._retire(c, STOPPED, c.note or "drained")
            self.emit("consumer-stopped", f"{c.id} drained and stopped", consumer=c.id)

    async def _begin_drain(self, c: Consumer) -> None:
        """Stop giving it work; hand back what it has not started; it stops when done."""
        if c.draining:
            return
        self.room_total -= c.room
        c.draining = True
        buffered = list(c.buffer)
        c.buffer.clear()
        if buffered:
            c.held -= len(buffered)
            await self.broker.release([d.receipt for d in buffered], REASON_RELEASED)
            await self.dispatch(None)
        c.wake()

    def _retire(self, c: Consumer, state: str, note: str) -> None:
        if self.consumers.pop(c.id, None) is None:
            return
        if c.accepting:
            self.room_total -= c.room
        c.state = state
        c.note = note
        c.ended_at = self.clock.now()
        c.hist.all_time_into(self.retired_latency)
        self.retired_latency_sum += c.hist.total
        self.ended.append(c)

    async def fail_consumer(self, c: Consumer, reason: str) -> int:
        """Mark a consumer failed, stop it, and give its leases to the others at once."""
        if c.id not in self.consumers:
            return 0
        self._retire(c, FAILED, reason)
        if c.task is not None and not c.task.done() and c.task is not asyncio.current_task():
            c.task.cancel()
        released = await self.broker.release_holder(c.id, REASON_CONSUMER_FAILED, reason)
        c.buffer.clear()
        c.current.clear()
        c.held = 0
        self.failovers += 1
        self.to_replace += 1
        self.emit("consumer-failed", f"{c.id} failed ({reason}); {released} leases released",
                  consumer=c.id, reason=reason, released=released)
        self.alerts.fire("consumer-failed", WARNING, f"{c.id} failed: {reason}", key=c.id)
        await self.dispatch(None)
        self.check_joiners()
        return released

    def replace_failed(self) -> None:
        """Supervisor: start replacements for failed consumers, within the restart limit."""
        while self.to_replace > 0 and not self.stopping:
            live = sum(1 for c in self.consumers.values() if not c.draining)
            if live >= self.desired:
                self.to_replace = 0
                break
            if not self.health.may_restart():
                msg = (f"restart limit hit: {self.config.restart_limit} restarts within "
                       f"{self.config.restart_window}s; not restarting")
                if not self.alerts.is_active("restart-limit"):
                    self.emit("restart-limit", msg)
                self.alerts.fire("restart-limit", CRITICAL, msg)
                return
            self.to_replace -= 1
            c = self._start_consumer()
            for key in self.alerts.active_keys("consumer-failed"):
                self.alerts.resolve("consumer-failed", key)
                self.emit("consumer-replaced", f"{key} replaced by {c.id}", failed=key,
                          consumer=c.id)
                break
        if self.to_replace == 0 and self.alerts.is_active("restart-limit"):
            self.alerts.resolve("restart-limit")

    # -- operator commands --------------------------------------------------

    def _get(self, cid: str) -> Consumer:
        c = self.consumers.get(cid)
        if c is None:
            raise KeyError(f"no running consumer {cid!r}")
        return c

    async def kill_consumer(self, cid: str) -> int:
        """Crash it now; its leases go back to the queue at once. Returns how many."""
        return await self.fail_consumer(self._get(cid), "killed")

    async def hang_consumer(self, cid: str) -> None:
        """Stop its heartbeats and stall it; the health check must catch it."""
        c = self._get(cid)
        c.hung = True
        self.emit("consumer-hung", f"{cid} hung (heartbeats stopped)", consumer=cid)

    def slow_consumer(self, cid: str, factor: float) -> None:
        """Make its handling `factor` times slower (1.0 restores it)."""
        c = self._get(cid)
        c.slow_factor = max(1.0, float(factor))
        self.emit("consumer-slowed", f"{cid} slowed x{c.slow_factor:g}", consumer=cid,
                  factor=c.slow_factor)

    async def scale_to(self, n: int, *, source: str = "operator", reason: str = "") -> int:
        """Resize the pool now (within min/max); returns the new size."""
        cfg = self.config
        n = max(cfg.min_consumers, min(cfg.max_consumers, int(n)))
        before = self.desired
        self.desired = n
        live = [c for c in self.consumers.values() if not c.draining]
        for _ in range(n - len(live)):
            self._start_consumer()
        if len(live) > n:
            # Drain the idlest: fewest held, newest first among equals.
            idlest = sorted(live, key=lambda c: (c.held, -c.ordinal))[: len(live) - n]
            for c in idlest:
                await self._begin_drain(c)
        self.to_replace = 0
        if n != before:
            direction = "up" if n > before else "down"
            self.scaling_counts[(direction, reason or source)] += 1
            self.scaling.append(ScalingEvent(self.clock.now(), source, before, n,
                                             reason or "operator request"))
            why = source  # the reason too, once: "autoscaler: backlog", "drill scale to 5"
            if reason:
                why = reason if reason.startswith(source) else f"{source}: {reason}"
            self.emit("pool-scaled", f"pool {before} -> {n} ({why})", source=source,
                      from_size=before, to_size=n, reason=reason)
        return n

    async def rolling_update(
        self, handler: Handler, *, max_unavailable: int = 1, version: str | None = None
    ) -> str:
        """Replace every consumer with one running `handler`, `max_unavailable` at a time:
        start the new one, then drain the old (it finishes or hands back what it holds).
        Returns the new version label."""
        if max_unavailable < 1:
            raise ValueError("max_unavailable must be at least 1")
        if version is None:
            digits = self.version.lstrip("v")
            version = f"v{int(digits) + 1}" if digits.isdigit() else f"{self.version}+1"
        self.handler = handler
        self.version = version
        old = [c for c in self.consumers.values() if c.version != version and not c.draining]
        self.emit("rolling-update-started", f"rolling update to {version}: {len(old)} consumers",
                  version=version, consumers=len(old))
        for i in range(0, len(old), max_unavailable):
            group = [c for c in old[i:i + max_unavailable] if c.id in self.consumers]
            for _ in group:
                self._start_consumer()
            for c in group:
                await self._begin_drain(c)
            await self._await_retired(group, self.config.shutdown_grace)
        self.emit("rolling-update-finished", f"rolling update to {version} finished",
                  version=version)
        return version

    async def _await_retired(self, group: list[Consumer], grace: float) -> None:
        """Wait (up to `grace`) for draining consumers to stop; then cut them off."""
        tasks = [c.task for c in group if c.task is not None and not c.task.done()]
        if tasks:
            done = asyncio.get_running_loop().create_future()
            pending = set(tasks)

            def finished(t: asyncio.Task[None]) -> None:
                pending.discard(t)
                if not pending and not done.done():
                    done.set_result(None)

            for t in tasks:
                t.add_done_callback(finished)
            def give_up() -> None:
                if not done.done():
                    done.set_result(None)

            timer = self.clock.call_at(self.clock.now() + grace, give_up)
            try:
                await done
            finally:
                timer.cancel()
        for c in group:
            if c.id in self.consumers:  # over the grace: stop it, hand its work back
                if c.task is not None:
                    c.task.cancel()
                await self.broker.release_holder(c.id, REASON_RELEASED, "drain timed out")
                self._retire(c, STOPPED, "drain timed out")
                await self.dispatch(None)

    def set_balancer(self, name: str) -> None:
        """Switch the balancing strategy; takes effect from the next pick."""
        self.balancer = make_balancer(name, self.rng)
        self.emit("balancer-switched", f"balancer is now {name}", balancer=name)

    def set_weight(self, cid: str, weight: int) -> None:
        """Set a consumer's weight for the weighted balancer (default 1)."""
        if weight < 0:
            raise ValueError("weight must not be negative")
        self._get(cid).weight = int(weight)
        self.emit("weight-set", f"{cid} weight {weight}", consumer=cid, weight=weight)

    async def pause(self) -> None:
        """Stop handing out work (publishing continues; the backlog grows)."""
        self.paused = True
        self.emit("consumption-paused", "consumption paused")

    async def resume(self) -> None:
        """Hand out work again."""
        self.paused = False
        self._room_changed()
        self.emit("consumption-resumed", "consumption resumed")
        await self.dispatch(None)

    async def redrive(self, ids: Sequence[str] | None = None) -> int:
        """DLQ -> queue (all, or these ids), attempts reset."""
        n = await self.broker.redrive(ids)
        self.emit("dlq-redriven", f"{n} dead letters redriven", count=n)
        await self.dispatch(None)
        return n

    async def purge_dead(self, ids: Sequence[str] | None = None) -> int:
        """Delete dead letters for good (all, or these ids)."""
        n = await self.broker.purge(ids)
        self.emit("dlq-purged", f"{n} dead letters purged", count=n)
        return n

    def acknowledge_alert(self, alert_id: int) -> bool:
        """Mark an alert as seen by an operator."""
        return self.alerts.acknowledge(alert_id)

    def set_autoscale(self, on: bool) -> None:
        """Let the autoscaler resize the pool (or stop it)."""
        self.autoscale = on
        self.emit("autoscale-switched", f"autoscaler {'on' if on else 'off'}", on=on)

    # -- guards around the handler ------------------------------------------

    def message_type(self, d: Delivery) -> str:
        """The circuit-breaker key of a delivery: its body's type field, if any."""
        body = d.body
        if isinstance(body, dict):
            t = body.get(self.config.type_key)
            if isinstance(t, str):
                return t
        return "default"

    async def hold_back(self, c: Consumer, d: Delivery) -> bool:
        """Apply the rate limit and circuit breaker; True if the delivery was deferred."""
        now = self.clock.now()
        if self.config.breaker_threshold is not None:
            t = self.message_type(d)
            br = self.breakers.get(t)
            if br is None:
                br = self.breakers[t] = CircuitBreaker(
                    self.config.breaker_threshold, self.config.breaker_cooldown)
            wait = br.wait_time(now)
            if wait > 0:  # breaker open: try again later, never dead-letter for it
                await self.broker.defer(d.receipt, wait)
                return True
        if self.bucket is not None:
            wait = self.bucket.take(now)
            if wait > 0:
                await self.clock.sleep(wait)
        return False

    def handler_succeeded(self, d: Delivery) -> None:
        """Close the breaker of this delivery's type."""
        br = self.breakers.get(self.message_type(d))
        if br is not None and br.state != "closed":
            br.success()
            self.emit("breaker-closed", f"circuit breaker closed for {self.message_type(d)}")
            self.alerts.resolve("circuit-open", self.message_type(d))

    def handler_failed(self, c: Consumer, d: Delivery, error: str, dead: bool) -> None:
        """Count a failure against the breaker; note dead letters."""
        if self.config.breaker_threshold is not None:
            t = self.message_type(d)
            br = self.breakers.setdefault(
                t, CircuitBreaker(self.config.breaker_threshold, self.config.breaker_cooldown))
            if br.failure(self.clock.now()):
                self.emit("breaker-opened", f"circuit breaker opened for {t}", type=t)
                self.alerts.fire("circuit-open", WARNING, f"circuit breaker open for {t}", key=t)
        if dead:
            self.emit("dead-lettered", f"{d.message_id} dead-lettered after {d.attempt} "
                      f"attempts: {error}", message_id=d.message_id, error=error)
            self.check_joiners()

    # -- events and views ---------------------------------------------------

    def emit(self, kind: str, message: str, **fields: Any) -> Event:
        """Record an operational event and tell the listeners."""
        ev = Event(next(self._event_seq), self.clock.now(), kind, message, tuple(fields.items()))
        self.events.append(ev)
        for listener in self._listeners:
            listener(ev)
        return ev

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Call `fn` with every future event (log file, dashboard)."""
        self._listeners.append(fn)

    def events_since(self, seq: int) -> list[Event]:
        """Events with a sequence number above `seq` still in the buffer."""
        return [e for e in self.events if e.seq > seq]

    def _running_delivery(self, task: asyncio.Task[Any] | None) -> tuple[str, str] | None:
        """The consumer whose task this is, and the message it handles. Called by the
        stall sampler's thread while the loop is blocked (so nothing changes meanwhile)."""
        for c in list(self.consumers.values()):
            if c.task is task:
                current = list(c.current)
                return c.id, current[0].message_id if current else ""
        return None

    def _broker_event(self, kind: str, fields: dict[str, Any]) -> None:
        if kind == "lease-expired":
            self.emit(kind, f"lease of {fields.get('message_id')} held by "
                      f"{fields.get('consumer')} expired", **fields)
        elif kind == "undecodable":  # a foreign or corrupt entry, dead-lettered at once
            text = f"undecodable entry {fields.get('entry')} dead-lettered: {fields.get('error')}"
            self.emit(kind, text, **fields)
            self.alerts.fire("undecodable-entry", WARNING, text)
        else:
            self.emit(kind, kind, **fields)

    def _on_alert(self, alert: Any) -> None:
        self.emit(f"alert-{alert.state}", f"alert {alert.name} {alert.state}: {alert.message}",
                  alert=alert.name, severity=alert.severity)

    def snapshot(self, *, max_leases: int = 200, max_dead: int = 200) -> Snapshot:
        """The engine's state now, frozen."""
        return build_snapshot(self, max_leases=max_leases, max_dead=max_dead)

    def consumer_ids(self, *, include_draining: bool = False) -> list[str]:
        """Ids of the running consumers, oldest first."""
        return [c.id for c in self.consumers.values() if include_draining or not c.draining]


__all__ = ["Engine", "EngineStopped", "DRAINING", "ENDED_STATES"]
