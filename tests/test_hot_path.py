"""The per-message path does its bookkeeping in batches: latencies are binned per
batch, not per message, and nothing they feed (a consumer's quantiles, the pool's,
the all-time totals) misses one."""

from __future__ import annotations

import contextlib
import os
import random
import sys
from collections import Counter
from types import FrameType
from typing import Any

import pytest

from ccdash import Delivery, Engine, EngineConfig
from ccdash.brokers.codec import keep_body
from ccdash.brokers.memory import MemoryBroker
from ccdash.brokers.memory import broker as memory_broker
from ccdash.clock import FakeClock
from ccdash.engine.consumer import Consumer
from ccdash.engine.dispatcher import Dispatcher
from ccdash.engine.metrics import (
    EWMA_ALPHA,
    PENDING_LIMIT,
    LatencyHistogram,
    empty_counts,
    quantile_of,
)

ENGINE_DIR = os.path.dirname(sys.modules[Consumer.__module__].__file__ or "") + os.sep


def _quiet(prefetch: int, seed: int | None = None) -> EngineConfig:
    """Two consumers whose leases and heartbeats never run out during a test."""
    return EngineConfig(
        consumers=2,
        prefetch=prefetch,
        visibility_timeout=600.0,
        heartbeat_interval=100.0,
        heartbeat_timeout=300.0,
        seed=seed,
    )


async def test_latencies_are_binned_in_batches_and_every_one_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """2,000 messages through 2 consumers bin their latencies a few times, not 2,000;
    the consumers' counts, the pool's quantiles (from the tick) and the all-time
    totals still hold every one of them."""
    clock = FakeClock()

    async def handler(d: Delivery) -> None:
        await clock.sleep(0.001 * (1 + d.body % 7))

    binned = [0]
    real = LatencyHistogram.digest

    def counting(self: LatencyHistogram) -> None:
        if self.pending:
            binned[0] += 1
        real(self)

    monkeypatch.setattr(LatencyHistogram, "digest", counting)
    cfg = _quiet(prefetch=8, seed=3)
    async with Engine(cfg, handler=handler, clock=clock) as engine:
        await engine.publish_many(list(range(2000)))
        await clock.run_until(lambda: engine.broker.outstanding() == 0, step=0.05)
        during = binned[0]
        assert during <= 2000 // PENDING_LIMIT + 4  # a batch per PENDING_LIMIT per consumer
        merged = empty_counts()
        for c in engine.consumers.values():
            c.hist.merge_into(merged)
        assert sum(merged) == 2000
        await engine.health.tick()
        assert (engine.gauges.pool_p50, engine.gauges.pool_p99) == (
            quantile_of(merged, 0.5),
            quantile_of(merged, 0.99),
        )
        totals = engine.snapshot(history=True).latency_totals
        assert totals is not None
        assert totals.count == 2000
        assert sum(n for _, n in totals.buckets) == 2000
        assert sum(c.processed for c in engine.snapshot().consumers) == 2000


def test_a_histogram_reads_what_is_pending() -> None:
    """Recorded latencies count in every read at once, in the child and its parent."""
    parent = LatencyHistogram()
    child = LatencyHistogram(parent=parent)
    for v in (0.001, 0.002, 0.004):
        child.record(v)
    assert child.count == 3
    assert child.p50_p99()[1] == parent.p50_p99()[1]
    assert parent.count == 3
    assert parent.total == pytest.approx(0.007)
    child.record(1.0)
    child.rotate()  # the pending one belongs to the generation rotated out
    p99 = child.p50_p99()[1]
    assert p99 is not None and p99 >= 1.0


async def test_a_paused_publish_tries_no_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """While paused, a publish into an idle pool leaves the dispatcher alone (it used to
    run the dispatch path per message to get nothing); resuming hands everything out."""
    calls = [0]
    real = Dispatcher.dispatch_nowait

    def counting(self: Dispatcher, hint: Consumer | None) -> None:
        calls[0] += 1
        real(self, hint)

    monkeypatch.setattr(Dispatcher, "dispatch_nowait", counting)
    clock = FakeClock()
    seen: list[int] = []

    async def handler(d: Delivery) -> None:
        seen.append(d.body["id"])

    cfg = _quiet(prefetch=4)
    async with Engine(cfg, handler=handler, clock=clock) as engine:
        await engine.pause()
        for i in range(100):
            await engine.publish({"id": i})
        assert calls[0] == 0
        await engine.resume()
        await clock.run_until(lambda: engine.broker.outstanding() == 0, step=0.01)
    assert sorted(seen) == list(range(100))


async def test_a_flat_dict_body_is_kept_without_a_codec_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The memory broker keeps a flat dict body (str keys, JSON scalars) as a copy with
    its own inline check: no call to the codec per message. Anything else still goes
    through `keep_body`, and every delivery is a fresh copy either way."""
    kept = [0]
    real = keep_body

    def counting(body: Any, max_bytes: int) -> tuple[Any, int]:
        kept[0] += 1
        return real(body, max_bytes)

    monkeypatch.setattr(memory_broker, "keep_body", counting)
    broker = MemoryBroker()
    flat = {"id": 1, "body": "x" * 100, "ok": True, "none": None, "f": 0.5}
    for _ in range(50):
        broker.publish_nowait(flat)
    assert kept[0] == 0
    for body in ({"n": [1]}, {"big": 10**19}, {"nan": float("nan")}, "text", 7):
        with contextlib.suppress(TypeError):  # NaN: refused, as json.dumps(allow_nan=False)
            broker.publish_nowait(body)
    assert kept[0] == 5
    got = broker.receive_nowait(["c"] * 2)
    flat["id"] = 2  # the publisher's later change is never seen
    assert [d.body for d in got] == [{**flat, "id": 1}] * 2
    assert got[0].body is not got[1].body


async def _engine_bytecodes(prefetch: int, n: int) -> Counter[str]:
    """Bytecodes the engine's own modules (ccdash/engine, not the broker) run while 8
    consumers with a trivial handler take n preloaded messages, by function."""
    counts: Counter[str] = Counter()

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        if not frame.f_code.co_filename.startswith(ENGINE_DIR):
            return None
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        if event == "opcode":
            counts[frame.f_code.co_name] += 1
        return trace

    clock = FakeClock()

    async def handler(d: Delivery) -> None:
        pass

    cfg = EngineConfig(
        consumers=8,
        prefetch=prefetch,
        visibility_timeout=600.0,
        heartbeat_interval=100.0,
        heartbeat_timeout=300.0,
        seed=1,
    )
    async with Engine(cfg, handler=handler, clock=clock) as engine:
        await engine.pause()
        for i in range(n):
            await engine.publish({"id": i})
        sys.settrace(trace)
        try:
            await engine.resume()
            await clock.run_until(lambda: engine.broker.outstanding() == 0, step=0.05)
        finally:
            sys.settrace(None)
        assert engine.snapshot().acked == n
    return counts


@pytest.mark.parametrize("prefetch", [32, 1])
async def test_the_engine_runs_few_bytecodes_per_message(prefetch: int) -> None:
    """The engine's share of a message (handler call, ack, latency, slot accounting,
    refill) stays small: at most 150 bytecodes per message at prefetch 32 and at
    prefetch 1 (CPython 3.11: 192 and 230 before the consumer's loop read the clock once
    per message and a consumer at its mark took its refill straight from the broker)."""
    n = 2000
    counts = await _engine_bytecodes(prefetch, n)
    per_message = sum(counts.values()) / n
    assert per_message <= 150, counts.most_common(8)


def test_the_ewma_is_the_running_one_without_work_per_observation() -> None:
    """`ewma()` folds what was recorded since it was last read, across binning, and
    equals the mean updated one observation at a time (recording stays one append)."""
    rng = random.Random(5)
    hist = LatencyHistogram()
    expected = 0.0
    for i in range(3 * PENDING_LIMIT + 7):
        x = rng.uniform(0.0001, 0.5)
        hist.record(x)
        expected += EWMA_ALPHA * (x - expected)
        if i % 97 == 0:
            assert hist.ewma() == pytest.approx(expected, rel=1e-12)
    hist.digest()
    assert hist.ewma() == pytest.approx(expected, rel=1e-12)


async def test_a_consumers_ewma_is_of_its_successes() -> None:
    """Failed runs count in the latency quantiles but not in the ewma p2c-ewma routes by:
    a consumer whose handler fails fast does not look fast."""
    clock = FakeClock()

    async def handler(d: Delivery) -> None:
        if d.body["ok"]:
            await clock.sleep(0.1)
        else:
            raise ValueError("fails at once")

    cfg = EngineConfig(
        consumers=1,
        max_attempts=1,
        visibility_timeout=600.0,
        heartbeat_interval=100.0,
        heartbeat_timeout=300.0,
    )
    async with Engine(cfg, handler=handler, clock=clock) as engine:
        for i in range(40):
            await engine.publish({"ok": i < 10})
        await clock.run_until(lambda: engine.broker.outstanding() == 0, step=0.05)
        (c,) = engine.consumers.values()
        assert (c.processed, c.failed) == (10, 30)
        assert c.hist.count == 40
        assert c.ewma == pytest.approx(0.1, rel=0.05)
