"""Engine behaviours beyond the three study tests, on a fake clock.

Tests taking `engines` (tests/support/engine_harness.py) run on every broker: on
memory and SQLite when marked `fake_clock_only`, on Redis too when on real time."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest
from support.broker_harness import fake_clock_only
from support.engine_harness import Engines
from support.settling_clock import SettlingClock

from ccdash import ConfigError, Delivery, Engine, EngineConfig, EngineStopped
from ccdash.brokers.base import REASON_RELEASED, ReceiptRejected
from ccdash.clock import FakeClock
from ccdash.engine.guards import HandlerGuards


def fast_cfg(**kw: object) -> EngineConfig:
    base: dict[str, object] = dict(
        consumers=2,
        heartbeat_interval=0.5,
        heartbeat_timeout=2.0,
        visibility_timeout=10.0,
        backoff_base=0.1,
        backoff_max=0.5,
        seed=1,
    )
    base.update(kw)
    return EngineConfig(**base)  # type: ignore[arg-type]


@fake_clock_only
async def test_long_healthy_handler_keeps_its_lease(engines: Engines) -> None:
    """A handler running 3x the visibility timeout is never redelivered: its lease is extended."""
    clock = engines.clock()
    calls: Counter[str] = Counter()

    async def slow(d: Delivery) -> None:
        calls[d.message_id] += 1
        await clock.sleep(30.0)

    async with engines.make(fast_cfg(consumers=1), handler=slow, clock=clock) as engine:
        mid = await engine.publish({"x": 1})
        await clock.run_until(lambda: engine.snapshot().acked == 1, step=0.5, limit=60)
        snap = engine.snapshot()
    assert calls[mid] == 1
    assert snap.redelivered == 0


@fake_clock_only
async def test_handler_timeout_nacks_the_message(engines: Engines) -> None:
    """A handler over handler_timeout is cancelled and the message retried, then dead-lettered."""
    clock = engines.clock()

    async def stuck(d: Delivery) -> None:
        await clock.sleep(1000)

    cfg = fast_cfg(consumers=1, handler_timeout=1.0, max_attempts=2)
    async with engines.make(cfg, handler=stuck, clock=clock) as engine:
        await engine.publish({"x": 1})
        await clock.run_until(lambda: engine.snapshot().queue.dead == 1, step=0.25, limit=30)
        dead = engine.snapshot().dead_letters[0]
    assert dead.attempts == 2
    assert "HandlerTimeout" in dead.last_error


@fake_clock_only
async def test_retries_then_dead_letter_with_error_text(engines: Engines) -> None:
    """A handler that always raises: max_attempts deliveries, then the DLQ with the exception."""
    clock = engines.clock()
    attempts: list[int] = []

    async def bad(d: Delivery) -> None:
        attempts.append(d.attempt)
        raise ValueError("card declined")

    async with engines.make(fast_cfg(max_attempts=3), handler=bad, clock=clock) as engine:
        await engine.publish({"order": 9})
        await clock.run_until(lambda: engine.snapshot().queue.dead == 1, limit=30)
        snap = engine.snapshot()
        await engine.join(timeout=1)
    assert attempts == [1, 2, 3]
    dl = snap.dead_letters[0]
    assert dl.reason == "failed" and dl.attempts == 3
    assert dl.last_error == "ValueError: card declined"
    assert snap.published == snap.acked + snap.queue.dead
    assert any(a.name == "dlq-growing" for a in snap.alerts) or snap.dead_lettered == 1


@fake_clock_only
async def test_redrive_puts_dead_letters_back_and_join_waits(engines: Engines) -> None:
    """After redrive the message is handled again (attempt 1) and join waits for it."""
    clock = engines.clock()
    fail = True
    handled: list[int] = []

    async def flaky(d: Delivery) -> None:
        if fail:
            raise RuntimeError("down")
        handled.append(d.attempt)

    async with engines.make(fast_cfg(max_attempts=1), handler=flaky, clock=clock) as engine:
        await engine.publish({"x": 1})
        await clock.run_until(lambda: engine.snapshot().queue.dead == 1)
        fail = False
        assert await engine.redrive() == 1
        await clock.run_until(lambda: engine.snapshot().acked == 1)
        await engine.join(timeout=1)
        snap = engine.snapshot()
    assert handled == [1]
    assert snap.queue.dead == 0


async def _payments_outage(engines: Engines, breaker: int | None) -> tuple[int, int, list[str]]:
    """10 payments during a 6 s outage; returns (acked, dead, event kinds)."""
    clock = engines.clock()
    down_until = clock.now() + 6.0

    async def payments(d: Delivery) -> None:
        if clock.now() < down_until:
            raise ConnectionError("payments down")

    cfg = fast_cfg(consumers=1, max_attempts=5, breaker_threshold=breaker, breaker_cooldown=2.0)
    async with engines.make(cfg, handler=payments, clock=clock) as engine:
        for i in range(10):
            await engine.publish({"type": "pay", "n": i})
        await clock.run_until(
            lambda: engine.snapshot().acked + engine.snapshot().queue.dead == 10, step=0.1, limit=60
        )
        snap = engine.snapshot()
        return snap.acked, snap.queue.dead, [e.kind for e in engine.events]


@fake_clock_only
async def test_circuit_breaker_delays_instead_of_dead_lettering(engines: Engines) -> None:
    """An outage dead-letters messages without a breaker; with one they wait and succeed."""
    _, dead_without, _ = await _payments_outage(engines, None)
    assert dead_without > 0  # the control: plain retries run out during the outage
    acked, dead, kinds = await _payments_outage(engines, 2)
    assert (acked, dead) == (10, 0)
    assert "breaker-opened" in kinds and "breaker-closed" in kinds


@fake_clock_only
async def test_restart_intensity_limit_stops_restarts_and_alerts(engines: Engines) -> None:
    """More failures than restart_limit within restart_window: no more restarts, critical alert."""
    clock = engines.clock()

    async def idle(d: Delivery) -> None:
        return None

    cfg = fast_cfg(consumers=1, restart_limit=2, restart_window=60.0)
    async with engines.make(cfg, handler=idle, clock=clock) as engine:
        for _ in range(3):
            await clock.run_until(lambda: len(engine.consumer_ids()) == 1, limit=5)
            await engine.kill_consumer(engine.consumer_ids()[0])
        await clock.advance(2.0)
        snap = engine.snapshot()
        assert engine.consumer_ids() == []
        names = {(a.name, a.severity) for a in snap.alerts if a.state == "firing"}
        assert ("restart-limit", "critical") in names
        assert ("no-healthy-consumer", "critical") in names
        await clock.advance(61.0)  # the window passes: restarts allowed again
        assert len(engine.consumer_ids()) == 1


@fake_clock_only
async def test_batch_handler_acks_some_and_nacks_others(engines: Engines) -> None:
    """A batch handler gets up to batch_size deliveries; failures it names are retried."""
    clock = engines.clock()
    sizes: list[int] = []
    tries: Counter[int] = Counter()

    async def batch(ds: list[Delivery]) -> dict[str, str]:
        sizes.append(len(ds))
        failures = {}
        for d in ds:
            tries[d.body["n"]] += 1
            if d.body["n"] % 2 and d.attempt == 1:
                failures[d.message_id] = "odd on first try"
        return failures

    cfg = fast_cfg(consumers=1, batch_size=5, prefetch=5, batch_linger=0.2)
    async with engines.make(cfg, batch_handler=batch, clock=clock) as engine:
        for i in range(10):
            await engine.publish({"n": i})
        await clock.run_until(lambda: engine.snapshot().acked == 10, limit=30)
        snap = engine.snapshot()
    assert sizes[0] == 5
    assert snap.queue.dead == 0
    assert all(tries[n] == (2 if n % 2 else 1) for n in range(10))


@fake_clock_only
async def test_balancer_switch_mid_stream_loses_and_duplicates_nothing(engines: Engines) -> None:
    """Switching through all four balancers while messages flow: each handled exactly once."""
    clock = engines.clock()
    seen: Counter[str] = Counter()

    async def h(d: Delivery) -> None:
        await clock.sleep(0.01)
        seen[d.message_id] += 1

    async with engines.make(fast_cfg(consumers=4, prefetch=2), handler=h, clock=clock) as engine:
        ids = []
        for name in ["weighted", "least-inflight", "p2c-ewma", "round-robin"] * 3:
            for i in range(50):
                ids.append(await engine.publish({"i": i}))
            engine.set_balancer(name)
            await clock.advance(0.05)
        await clock.run_until(lambda: engine.snapshot().acked == len(ids), limit=60)
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1


@fake_clock_only
async def test_graceful_shutdown_finishes_handlers_and_loses_nothing(engines: Engines) -> None:
    """Leaving `async with` lets running handlers finish and ack; the rest stays queued."""
    clock = engines.clock()
    done: list[str] = []
    started = asyncio.Event()

    async def h(d: Delivery) -> None:
        started.set()
        await clock.sleep(1.0)
        done.append(d.message_id)

    engine = engines.make(fast_cfg(consumers=2, shutdown_grace=5.0), handler=h, clock=clock)
    async with engine:
        for i in range(10):
            await engine.publish({"i": i})
        await started.wait()
        stopper = asyncio.create_task(engine.stop())
        await clock.run_until(stopper.done, step=0.1, limit=10)
        await stopper
    stats = engine.broker.stats()
    assert len(done) == 2  # the two in the handlers finished; none was cut short
    assert stats.acked == 2
    assert stats.ready + stats.delayed == 8 and stats.in_flight == 0
    assert engine.leftover == 8
    assert any(e.kind == "engine-stopped" and "8 messages" in e.message for e in engine.events)
    with pytest.raises(EngineStopped):
        await engine.publish({"late": True})


@fake_clock_only
async def test_shutdown_grace_cancels_overrunning_handlers_and_releases(engines: Engines) -> None:
    """A handler still running when the grace ends is cancelled; its message stays queued."""
    clock = engines.clock()

    async def forever(d: Delivery) -> None:
        await clock.sleep(10_000)

    engine = engines.make(fast_cfg(consumers=1, shutdown_grace=1.0), handler=forever, clock=clock)
    async with engine:
        await engine.publish({"i": 1})
        await clock.advance(0.1)
        stopper = asyncio.create_task(engine.stop())
        await clock.run_until(stopper.done, step=0.1, limit=10)
        await stopper
    stats = engine.broker.stats()
    assert stats.ready == 1 and stats.in_flight == 0 and stats.acked == 0


@fake_clock_only
async def test_stop_with_grace_zero_cancels_at_once_whatever_the_config(engines: Engines) -> None:
    """stop(grace=0) skips the configured grace: handlers are cancelled, leases released."""
    clock = engines.clock()
    started = asyncio.Event()

    async def slow(d: Delivery) -> None:
        started.set()
        await clock.sleep(10_000)

    engine = engines.make(fast_cfg(consumers=1, shutdown_grace=60.0), handler=slow, clock=clock)
    async with engine:
        await engine.publish({"i": 1})
        await started.wait()
        await asyncio.wait_for(engine.stop(grace=0), timeout=5)  # no clock advance needed
    stats = engine.broker.stats()
    assert stats.ready == 1 and stats.in_flight == 0 and stats.acked == 0
    assert engine.config.shutdown_grace == 60.0


async def test_sync_handler_runs_in_a_thread(engines: Engines) -> None:
    """A plain (blocking) function handler runs off the event loop."""
    threads: set[str] = set()

    def blocking(d: Delivery) -> None:
        threads.add(threading.current_thread().name)

    async with engines.make(EngineConfig(consumers=2), handler=blocking) as engine:
        for i in range(20):
            await engine.publish({"i": i})
        await engine.join(timeout=10)
    assert threading.main_thread().name not in threads
    assert threads


@fake_clock_only
async def test_join_timeout_raises(engines: Engines) -> None:
    """join raises TimeoutError when messages are still pending at the deadline."""
    clock = engines.clock()

    async def never(d: Delivery) -> None:
        await clock.sleep(1000)

    engine = engines.make(fast_cfg(consumers=1, shutdown_grace=0.5), handler=never, clock=clock)
    async with engine:
        await engine.publish({"x": 1})
        waiter = asyncio.create_task(engine.join(timeout=2.0))
        await clock.advance(2.5)
        with pytest.raises(TimeoutError):
            await waiter
        stopper = asyncio.create_task(engine.stop())
        await clock.run_until(stopper.done, step=0.1, limit=10)
        await stopper


@fake_clock_only
async def test_scale_up_and_down_drains_idlest(engines: Engines) -> None:
    """scale_to grows at once and shrinks by draining; min/max clamp the size."""
    clock = engines.clock()

    async def h(d: Delivery) -> None:
        await clock.sleep(0.1)

    cfg = fast_cfg(consumers=2, min_consumers=1, max_consumers=5)
    async with engines.make(cfg, handler=h, clock=clock) as engine:
        assert await engine.scale_to(4) == 4
        assert len(engine.consumer_ids()) == 4
        assert await engine.scale_to(99) == 5
        assert await engine.scale_to(0) == 1
        await clock.advance(1.0)
        snap = engine.snapshot()
        assert len(engine.consumer_ids()) == 1
        assert sum(1 for c in snap.consumers if c.state == "stopped") == 4
        assert [s.to_size for s in snap.scaling] == [4, 5, 1]


@fake_clock_only
async def test_pause_stops_consumption_and_resume_restarts_it(engines: Engines) -> None:
    """Paused: publishing continues and the backlog grows; resume drains it."""
    clock = engines.clock()

    async def h(d: Delivery) -> None:
        return None

    async with engines.make(fast_cfg(), handler=h, clock=clock) as engine:
        await engine.pause()
        for i in range(5):
            await engine.publish({"i": i})
        await clock.advance(1.0)
        assert engine.snapshot().queue.depth == 5
        await engine.resume()
        await clock.run_until(lambda: engine.snapshot().acked == 5)


async def test_publish_only_engine(engines: Engines) -> None:
    """consumers=0 with no handler only publishes."""
    async with engines.make(EngineConfig(consumers=0, min_consumers=0)) as engine:
        await engine.publish(b"raw")
        snap = engine.snapshot()
    assert snap.queue.ready == 1 and snap.consumers == ()


async def test_body_round_trip_bytes_and_json(engines: Engines) -> None:
    """Bytes arrive as bytes, a dict as a dict."""
    got: list[object] = []

    async def h(d: Delivery) -> None:
        got.append(d.body)

    async with engines.make(EngineConfig(consumers=1), handler=h) as engine:
        await engine.publish(b"\x00\xff")
        await engine.join(timeout=5)
        await engine.publish({"a": [1, 2]})
        await engine.join(timeout=5)
    assert got == [b"\x00\xff", {"a": [1, 2]}]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"balancer": "fastest"}, "unknown balancer"),
        ({"min_consumers": 5, "max_consumers": 2, "consumers": 2}, "min_consumers"),
        ({"heartbeat_timeout": 40.0, "visibility_timeout": 30.0}, "heartbeat_timeout"),
        ({"visibility_timeout": float("inf")}, "finite"),
        ({"prefetch": 0}, "prefetch"),
        (
            {"heartbeat_interval": 0.0001, "heartbeat_timeout": 0.0002, "visibility_timeout": 0.1},
            r"heartbeat_interval must be from 0\.05 to 3600 seconds, got 0\.0001",
        ),
        ({"heartbeat_interval": 0.0, "heartbeat_timeout": 1.0}, r"heartbeat_interval .* got 0$"),
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"handler_timeout": -1.0}, r"handler_timeout must be greater than 0 \(or unset\), got -1"),
    ],
)
def test_config_rejects_bad_settings(kwargs: dict[str, object], needle: str) -> None:
    """EngineConfig names the bad or contradictory setting."""
    with pytest.raises(ConfigError, match=needle):
        EngineConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("vt", [0.31, 0.4, 1.0, 30.0, 86_400.0])
def test_a_worker_derives_legal_heartbeats_from_any_lease_it_accepts(vt: float) -> None:
    """`ccdash worker` accepts --visibility-timeout above --heartbeat-ttl (0.3 at least);
    the heartbeat it derives from it stays within the engine's bounds."""
    from ccdash.fleet.runtime import WorkerOptions, WorkerRuntime

    async def handle(d: Delivery) -> None:
        return None

    opts = WorkerOptions("redis://127.0.0.1:1/0", handle, visibility_timeout=vt, heartbeat_ttl=0.3)
    cfg = WorkerRuntime(opts).engine.config
    assert cfg.heartbeat_interval < cfg.heartbeat_timeout < cfg.visibility_timeout == vt


@fake_clock_only
async def test_rolling_update_under_load_is_zero_downtime(engines: Engines) -> None:
    """Every consumer ends on v2, throughput never stops for a second, nothing lost,
    and no stopped consumer handles anything."""
    clock = engines.clock()
    handled: list[tuple[str, str, float, str]] = []  # (message, consumer, at, version)

    def make(version: str):  # type: ignore[no-untyped-def]
        async def h(d: Delivery) -> None:
            await clock.sleep(0.05)
            handled.append((d.message_id, d.consumer_id, clock.now(), version))

        return h

    cfg = fast_cfg(consumers=4, prefetch=2)
    async with engines.make(cfg, handler=make("v1"), clock=clock) as engine:
        ids = []
        updater = None
        start = clock.now()
        for tick in range(100):  # 10 s at 40 msg/s
            for _ in range(4):
                ids.append(await engine.publish({"t": tick}))
            if tick == 20:
                updater = asyncio.create_task(engine.rolling_update(make("v2")))
            await clock.advance(0.1)
        assert updater is not None and updater.done()
        await clock.run_until(lambda: engine.broker.outstanding() == 0, limit=30)
        snap = engine.snapshot()
        assert updater.result() == "v2"
    live = [c for c in snap.consumers if c.state in ("idle", "processing")]
    assert len(live) == 4 and all(c.version == "v2" for c in live)
    assert {m for m, _, _, _ in handled} == set(ids)  # zero lost
    ended = {c.id: c.ended_at for c in snap.consumers if c.ended_at is not None}
    assert all(at <= ended[cid] for _, cid, at, _ in handled if cid in ended)
    per_second = Counter(int(at - start) for _, _, at, _ in handled)
    assert all(per_second[s] > 0 for s in range(10)), per_second
    assert any(v == "v2" for *_, v in handled) and any(v == "v1" for *_, v in handled)


async def test_publish_many_accepts_all_in_order(engines: Engines) -> None:
    """publish_many returns one id per body, and every message is handled once."""
    seen: list[object] = []

    async def h(d: Delivery) -> None:
        seen.append(d.body)

    async with engines.make(EngineConfig(consumers=1), handler=h) as engine:
        ids = await engine.publish_many([{"n": i} for i in range(50)])
        await engine.join(timeout=10)
    assert len(set(ids)) == 50
    assert seen == [{"n": i} for i in range(50)]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_slot_accounting_stays_exact_under_random_operations(seed: int) -> None:
    """Refills (the balancer's and the direct one), dry queues, failures, kills, pauses and
    scaling never leave a slot miscounted: after every step each consumer holds exactly
    what its buffer and handler have, the engine's room total is the consumers' rooms
    summed, the balancer's candidates are exactly the consumers with room (filed under
    what each holds), every consumer with spare slots above its refill mark is in the
    dispatcher's spare set, and at the end every message is acked or dead-lettered."""
    import random

    clock = FakeClock()
    rng = random.Random(seed)

    async def handler(d: Delivery) -> None:
        await clock.sleep(rng.choice((0.0, 0.0, 0.01, 0.05, 0.2)))
        if rng.random() < 0.1:
            raise RuntimeError("flaky")

    cfg = fast_cfg(
        consumers=3,
        prefetch=rng.choice((1, 2, 4, 8)),
        max_attempts=3,
        max_consumers=6,
        balancer=rng.choice(("round-robin", "least-inflight", "p2c-ewma", "weighted")),
    )

    def check(engine: Engine) -> None:
        for c in engine.consumers.values():
            assert c.held == len(c.buffer) + len(c.current), c.id
        assert engine.dispatcher.room_total == sum(c.room for c in engine.consumers.values())
        spare = [c for c in engine.consumers.values() if c.accepting and c.low < c.held < c.limit]
        assert set(spare) <= set(engine.dispatcher.spare)
        hungry = engine.dispatcher.hungry
        assert hungry.members() == [c for c in engine.consumers.values() if c.room > 0]
        if hungry.track_held:  # least-inflight
            assert all(hungry.held_of[c.ordinal] == c.held for c in hungry.members())

    published = 0
    async with Engine(cfg, handler=handler, clock=clock) as engine:
        for _ in range(150):
            action = rng.random()
            if action < 0.45:
                for _ in range(rng.randint(1, 12)):
                    await engine.publish({"n": published})
                    published += 1
            elif action < 0.55 and engine.consumers:
                await engine.kill_consumer(rng.choice(list(engine.consumers)))
            elif action < 0.62:
                await (engine.resume() if engine.paused else engine.pause())
            elif action < 0.7:
                await engine.scale_to(rng.randint(1, 5))
            await clock.advance(rng.choice((0.0, 0.01, 0.1, 0.5)))
            check(engine)
        await engine.resume()
        await clock.run_until(lambda: engine.broker.outstanding() == 0, step=0.1, limit=300)
        check(engine)
        snap = engine.snapshot()
    assert published > 0
    assert snap.acked + snap.dead_lettered == published


async def test_a_lost_buffered_lease_under_an_open_breaker_does_not_stop_the_engine() -> None:
    """A consumer's second, buffered delivery loses its lease (a peer took it over after
    a stall; here released directly) and the first fails, opening the breaker: the
    consumer's defer of the second is rejected. That is one delivery's lease, not a
    broker failure: the engine runs on and nobody else is failed over."""
    clock = SettlingClock()
    gate = asyncio.Event()

    async def handler(d: Delivery) -> None:
        if d.body["n"] == 0:
            await gate.wait()
            raise ConnectionError("payments down")

    cfg = EngineConfig(
        consumers=1,
        prefetch=2,
        breaker_threshold=1,
        breaker_cooldown=10.0,
        heartbeat_interval=0.25,
        heartbeat_timeout=1.0,
    )
    engine = Engine(cfg, handler=handler, clock=clock)
    async with asyncio.timeout(20), engine:
        await engine.publish({"n": 0})
        await engine.publish({"n": 1})
        await clock.run_until(lambda: engine.snapshot().queue.in_flight == 2, step=0.01, limit=5)
        [c] = engine.pool.consumers.values()
        [buffered] = list(c.buffer)
        await engine.broker.release([buffered.receipt], REASON_RELEASED)  # the lease is lost
        gate.set()
        await clock.advance(0.5)
        await clock.advance(0.5)
        assert engine.running
        assert engine.snapshot().failovers == 0


async def test_a_lease_lost_under_a_consumer_fails_that_consumer_not_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ReceiptRejected escaping a consumer (its lease was gone where nothing caught it)
    is about one delivery: that consumer is replaced, the engine runs on; only a broker
    failure (another BrokerError) stops it."""
    clock = SettlingClock()
    rejected: list[str] = []

    async def hold_back(self: HandlerGuards, d: Delivery) -> bool:
        if not rejected:
            rejected.append(d.message_id)
            raise ReceiptRejected(f"receipt {d.receipt!r} is not a live lease")
        return False

    monkeypatch.setattr(HandlerGuards, "hold_back", hold_back)

    async def handler(d: Delivery) -> None:
        pass

    cfg = EngineConfig(consumers=1, breaker_threshold=1, heartbeat_interval=0.25)
    engine = Engine(cfg, handler=handler, clock=clock)
    async with asyncio.timeout(20), engine:
        await engine.publish({"n": 0})
        await clock.run_until(lambda: bool(rejected), step=0.01, limit=5)
        await clock.run_until(lambda: engine.snapshot().failovers == 1, step=0.05, limit=5)
        assert engine.running
        await engine.publish({"n": 1})
        await clock.run_until(lambda: engine.snapshot().queue.depth == 0, step=0.05, limit=10)
        assert engine.running
