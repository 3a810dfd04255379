"""Stopping cannot hang: every wait has a deadline, one Ctrl-C ends a run with its report."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.fleet import worker_env
from support.polling import wait_until

from ccdash import Delivery, Engine, EngineConfig, EngineStopped
from ccdash.brokers.types import BrokerError
from ccdash.clock import FakeClock
from ccdash.scenario import load_scenario
from ccdash.scenario.workload import Workload

ROOT = Path(__file__).resolve().parent.parent


async def test_a_fleet_watcher_that_swallows_cancellation_does_not_wedge_the_drain() -> None:
    """The drain's fleet watcher, whose Redis call turns cancellation into a TimeoutError (as
    redis-py's timeout wrapper can), still ends: the run finishes instead of draining for ever."""
    clock = FakeClock()
    scenario = load_scenario("default")
    engine = scenario.make_engine(clock=clock, seed=1)
    workload = Workload(scenario, engine, seed=1)
    workload.shared_url = "redis://127.0.0.1:1/0"  # the watcher runs; it only calls refresh

    swallow = asyncio.Event()
    swallow.set()

    async def refresh() -> None:
        try:
            await asyncio.get_running_loop().create_future()  # Redis never answers
        except asyncio.CancelledError:
            if swallow.is_set():
                raise TimeoutError("Timeout reading from socket") from None
            raise

    engine.broker.refresh = refresh  # type: ignore[attr-defined]
    async with engine:
        run = asyncio.ensure_future(workload.run(2.0))
        try:
            await clock.run_until(run.done, step=0.25, limit=120)
        finally:
            swallow.clear()  # a failed test still ends its tasks
        run.result()
    assert workload.phase == "done" and workload.drained


async def test_engine_stop_abandons_a_handler_that_ignores_cancellation() -> None:
    """A handler that swallows every cancellation cannot hold stop() for ever: after the grace
    and the cancel deadline it is abandoned, with an event naming its task."""
    clock = FakeClock()
    release = asyncio.Event()
    started = asyncio.Event()

    async def stubborn(d: Delivery) -> None:
        started.set()
        while not release.is_set():
            try:
                await clock.sleep(1000)
            except asyncio.CancelledError:
                continue

    cfg = EngineConfig(
        consumers=1,
        shutdown_grace=1.0,
        heartbeat_interval=0.5,
        heartbeat_timeout=2.0,
        visibility_timeout=10.0,
    )
    engine = Engine(cfg, handler=stubborn, clock=clock)
    await engine.start()
    await engine.publish({"x": 1})
    await clock.run_until(started.is_set, limit=5)
    stopper = asyncio.ensure_future(engine.stop())
    try:
        took = await clock.run_until(stopper.done, step=0.5, limit=60)
    finally:
        release.set()
        await clock.advance(1000)
    stopper.result()
    assert took < 15
    abandoned = [e for e in engine.events if e.kind == "tasks-abandoned"]
    assert abandoned and "ccdash-c1" in abandoned[0].message


def test_one_sigint_stops_a_demo_whose_handler_ignores_cancellation() -> None:
    """A real `ccdash --demo` process: one SIGINT ends it within a bounded time and the report,
    marked interrupted, is printed, although its handler swallows cancellation."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ccdash",
            "--demo",
            "--duration",
            "60",
            "--seed",
            "1",
            "--handler",
            "support.fleet_handlers:stubborn",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the header: the run is under way
        assert "ccdash --demo" in first
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert took < 30, f"one SIGINT took {took:.1f} s to stop the run"
    assert "result: INTERRUPTED" in out
    assert "Traceback" not in out


async def _publish(url: str, n: int) -> None:
    async with Engine(EngineConfig(consumers=0, min_consumers=0), broker=url) as pub:
        for i in range(n):
            await pub.publish({"n": i})


@pytest.mark.slow
def test_one_sigint_stops_a_worker_whose_handler_ignores_cancellation(
    redis_url: str, tmp_path: Path
) -> None:
    """A real `ccdash worker` on a real Redis: one SIGINT ends it within a bounded time (exit 0)
    although its handler swallows cancellation."""
    env = worker_env(tmp_path)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ccdash.worker",
            "--broker",
            redis_url,
            "--handler",
            "support.fleet_handlers:stubborn",
            "--concurrency",
            "2",
            "--name",
            "stubborn",
            "--grace",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        asyncio.run(_publish(redis_url, 2))
        wait_until(lambda: list(tmp_path.glob("started-*")), 30, "the worker to start a handler")
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert took < 30, f"one SIGINT took {took:.1f} s to stop the worker"
    assert proc.returncode == 0, out[-2000:]
    assert "ignored cancellation" in out


async def test_a_stop_whose_lease_release_fails_still_ends_every_engine_task() -> None:
    """The broker's store fails while the stop hands leases back (a full disk): the stop
    raises that error, but only after every consumer's leases were tried and every task of
    the engine has ended. It left the other consumers, the dispatcher and the health
    monitor running, and their later errors surfaced as a traceback after the run ended."""
    clock = FakeClock()
    started: list[str] = []

    async def holds(d: Delivery) -> None:
        started.append(d.consumer_id)
        await clock.sleep(1000)

    cfg = EngineConfig(
        consumers=3,
        shutdown_grace=0.0,
        heartbeat_interval=0.5,
        heartbeat_timeout=2.0,
        visibility_timeout=60.0,
    )
    engine = Engine(cfg, handler=holds, clock=clock)
    tried: list[str] = []

    async def release_holder(holder: str, reason: str, error: str = "") -> int:
        tried.append(holder)
        raise BrokerError("sqlite broker q.db: write failed: disk I/O error")

    engine.broker.release_holder = release_holder  # type: ignore[method-assign]
    await engine.start()
    for i in range(3):
        await engine.publish({"i": i})
    await clock.run_until(lambda: len(started) == 3, limit=5)
    joiner = asyncio.ensure_future(engine.join())
    with pytest.raises(BrokerError, match="disk I/O error"):
        await engine.stop()
    assert sorted(tried) == ["c1", "c2", "c3"]
    assert not engine.tasks.running(), engine.tasks.running()
    with pytest.raises(EngineStopped):  # a join() waiting is told, not left for ever
        await asyncio.wait_for(joiner, 5)
