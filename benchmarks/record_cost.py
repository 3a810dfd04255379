"""What `--record` costs: bytes per minute of recording, and throughput with it on vs off.

Run: python benchmarks/record_cost.py [--quick]

1. Bytes per minute for the default scenario (a fake-clocked headless run,
   recorded as `ccdash --demo --record` records it).
2. Bytes per minute for 200 consumers holding 10,000 leases under steady load
   (fake clock; the frames hold what the dashboard shows: 60 leases, 200 dead).
3. Throughput with the recorder on vs off, real clock: an engine draining a
   backlog with a no-op handler (recording a frame every 0.25 s meanwhile), and
   the dashboard (Textual, headless, its refresh timer on) doing the same.
   Runs alternate on/off (and which goes first); medians of messages per CPU
   second of this process are compared, so other processes on the machine
   skew neither side.
"""

from __future__ import annotations

import asyncio
import io
import random
import statistics
import sys
import time
from typing import Any

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock
from ccdash.headless import PlainView, run_demo
from ccdash.record import Recorder
from ccdash.record.session import RecordingSession
from ccdash.scenario import load_scenario


def _size(recorder: Recorder) -> int:
    out = recorder.out
    assert isinstance(out, io.BytesIO)
    return len(out.getvalue())


async def default_scenario(seconds: float) -> tuple[float, float]:
    """(bytes per minute, seconds of run) for the default scenario."""
    clock = FakeClock()
    recorder = Recorder.in_memory()
    task = asyncio.ensure_future(
        run_demo(
            load_scenario(None),
            PlainView(io.StringIO()),
            clock=clock,
            duration=seconds,
            seed=7,
            recorder=recorder,
        )
    )
    await clock.run_until(task.done, step=0.05)
    report = await task
    ran = report["duration_s"]
    return _size(recorder) / ran * 60, ran


async def big_pool(seconds: float, consumers: int = 200, leases: int = 10_000) -> float:
    """Bytes per minute with `consumers` consumers holding `leases` leases, steady load."""
    clock = FakeClock()
    rng = random.Random(1)

    async def handle(d: Delivery) -> None:
        await clock.sleep(rng.uniform(0.5, 1.5))

    cfg = EngineConfig(
        consumers=consumers,
        max_consumers=consumers,
        prefetch=2 * leases // consumers,
        visibility_timeout=60.0,
        seed=1,
        shutdown_grace=0.0,
    )  # the fake clock stops with the run
    engine = Engine(cfg, handler=handle, clock=clock)
    recorder = Recorder.in_memory()
    session = RecordingSession(recorder, engine)
    async with engine:
        for i in range(2 * leases + 2000):  # refills stop at half: at least `leases` held
            await engine.publish({"i": i})
        session.start()
        rate = consumers  # about what the pool handles: the backlog stays
        t = 0.0
        while t < seconds:
            await engine.publish_many([{"t": t}] * (rate // 4))
            await clock.advance(0.25)
            t += 0.25
        held = engine.snapshot(max_leases=0, max_dead=0).queue.in_flight
        await session.stop()
        session.finish()
    assert held >= leases, held
    return _size(recorder) / seconds * 60


async def engine_drain(n: float, record: bool) -> float:
    """Messages per second draining `n` messages, real clock."""

    async def noop(d: Delivery) -> None:
        return None

    engine = Engine(EngineConfig(consumers=8, max_consumers=8, prefetch=16, seed=1), handler=noop)
    session = RecordingSession(Recorder.in_memory(), engine) if record else None
    async with engine:
        await engine.pause()
        for i in range(0, int(n), 1000):
            await engine.publish_many([{"i": j} for j in range(i, min(int(n), i + 1000))])
        if session is not None:
            session.start()
        t0 = time.process_time()
        await engine.resume()
        await engine.join(timeout=600)
        took = time.process_time() - t0
        if session is not None:
            await session.stop()
            session.finish()
    return n / took


async def dashboard_drain(seconds: float, record: bool) -> float:
    """Messages acked per CPU second in `seconds` of the dashboard (its refresh timer
    on, a frame recorded per refresh) while a producer keeps a backlog."""
    from ccdash.tui.app import DashboardApp

    async def noop(d: Delivery) -> None:
        return None

    engine = Engine(EngineConfig(consumers=8, max_consumers=8, prefetch=16, seed=1), handler=noop)
    app = DashboardApp(
        engine,
        None,
        title="bench",
        start_load=False,
        recorder=Recorder.in_memory() if record else None,
    )
    async with app.run_test(size=(160, 48)) as pilot:
        await app.engine_ready.wait()
        batch = [{"i": i} for i in range(500)]
        acked0, cpu0, wall0 = engine.snapshot().acked, time.process_time(), time.monotonic()
        while time.monotonic() - wall0 < seconds:
            if engine.snapshot(max_leases=0, max_dead=0).queue.depth < 20_000:
                await engine.publish_many(batch)
            await asyncio.sleep(0)  # let the consumers and the screen run
        acked, cpu = engine.snapshot().acked - acked0, time.process_time() - cpu0
        frames = app.recording.recorder.frames if app.recording is not None else 0
        await pilot.press("q")  # stop the engine and the refresh timer, then leave
        for _ in range(200):
            if app.engine_worker is None or app.engine_worker.is_finished:
                break
            await asyncio.sleep(0.05)
    if record:
        print(f"  (dashboard run: {frames} frames recorded in {seconds:g} s)")
    return acked / cpu


def ratio(runs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(median off, median on, on / off)."""
    off = statistics.median(r[0] for r in runs)
    on = statistics.median(r[1] for r in runs)
    return off, on, on / off


async def main(quick: bool) -> None:
    per_min, ran = await default_scenario(10 if quick else 60)
    print(
        f"default scenario: {per_min / 1024:.1f} KiB per minute of recording ({ran:.0f} s recorded)"
    )
    big = await big_pool(10 if quick else 60, *((20, 1000) if quick else (200, 10_000)))
    print(
        f"{'20 consumers, 1k' if quick else '200 consumers, 10k'} leases: "
        f"{big / 1024:.1f} KiB per minute"
    )
    for name, drain, amount in (
        ("engine", engine_drain, 50_000 if quick else 300_000),
        ("dashboard", dashboard_drain, 2.0 if quick else 8.0),
    ):
        runs = []
        for i in range(1 if quick else 6):
            if i % 2:
                on = await drain(amount, True)  # type: ignore[operator]
                off = await drain(amount, False)  # type: ignore[operator]
            else:
                off = await drain(amount, False)  # type: ignore[operator]
                on = await drain(amount, True)  # type: ignore[operator]
            runs.append((off, on))
        off_m, on_m, r = ratio(runs)
        print(
            f"{name} throughput: off {off_m:,.0f} msg/s, recording {on_m:,.0f} msg/s, "
            f"ratio {r:.3f} (medians of {len(runs)} alternating pairs, per CPU second)"
        )


if __name__ == "__main__":
    asyncio.run(main("--quick" in sys.argv))


__all__: list[Any] = []
