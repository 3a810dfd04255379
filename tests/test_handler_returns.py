"""What the engine does with what a handler returns or raises (the Python API, not the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock, MonotonicClock
from ccdash.scenario.ledger import Ledger, Tap


def sync_wrapper(fn: Callable[[Delivery], Awaitable[None]]) -> Callable[[Delivery], Any]:
    """A decorator written without `async def` (retry, logging, ...): it returns the coroutine."""

    def wrapper(d: Delivery) -> Any:
        return fn(d)

    return wrapper


async def test_sync_callable_returning_a_coroutine_is_awaited_before_the_ack() -> None:
    """A plain function that returns a coroutine has its coroutine run; the ack waits for it."""
    done: list[object] = []

    async def work(d: Delivery) -> None:
        await asyncio.sleep(0)
        done.append(d.body)

    async with Engine(EngineConfig(consumers=2), handler=sync_wrapper(work)) as engine:
        for i in range(5):
            await engine.publish({"i": i})
        await engine.join(timeout=10)
    assert sorted(b["i"] for b in done) == [0, 1, 2, 3, 4]  # type: ignore[index]


async def test_sync_callable_returning_a_failing_coroutine_retries_then_dead_letters() -> None:
    """The returned coroutine's exception is the handler's failure: retried, then dead-lettered."""

    async def fails(d: Delivery) -> None:
        raise ValueError("no")

    cfg = EngineConfig(consumers=1, max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    async with Engine(cfg, handler=sync_wrapper(fails)) as engine:
        await engine.publish({"x": 1})
        await engine.join(timeout=10)
        snap = engine.snapshot()
    assert snap.acked == 0
    assert snap.queue.dead == 1
    assert "ValueError" in snap.dead_letters[0].last_error


async def test_loss_checker_tap_runs_the_coroutine_a_sync_handler_returns() -> None:
    """The loss checker's Tap counts a completion only once the returned coroutine has run."""
    done: list[str] = []

    async def work(d: Delivery) -> None:
        await asyncio.sleep(0)
        done.append(d.message_id)

    ledger = Ledger(MonotonicClock())
    ledger.record_publish("m1", 0.0)
    tap = Tap(sync_wrapper(work), ledger)
    await tap(Delivery("m1", {"x": 1}, attempt=1, consumer_id="c1", receipt="r1"))
    assert done == ["m1"]
    assert ledger.done.keys() == {"m1"}


class Unprintable(Exception):
    """An exception whose str() itself raises (a broken __str__ in a user's library)."""

    def __str__(self) -> str:
        raise ValueError("str fails")


async def test_an_unprintable_exception_is_a_handler_failure_not_a_consumer_crash() -> None:
    """A handler exception whose str() raises is retried, then dead-lettered with its type
    named; the consumer that ran it keeps running."""

    async def fails(d: Delivery) -> None:
        raise Unprintable()

    cfg = EngineConfig(consumers=1, max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    async with Engine(cfg, handler=fails) as engine:
        await engine.publish({"x": 1})
        await engine.join(timeout=10)
        snap = engine.snapshot()
    assert snap.queue.dead == 1
    assert snap.dead_letters[0].reason == "failed"
    assert "Unprintable" in snap.dead_letters[0].last_error
    assert snap.failovers == 0
    assert [c.id for c in snap.consumers if c.state != "stopped"] == ["c1"]


async def test_a_cancelled_error_raised_by_the_handler_is_a_failure_and_the_consumer_lives() -> (
    None
):
    """A handler that awaits a task someone cancelled gets CancelledError: that delivery
    failed (retried), but the consumer was not cancelled and keeps handling messages."""
    calls: list[int] = []

    async def awaits_a_cancelled_task(d: Delivery) -> None:
        calls.append(d.attempt)
        if d.attempt == 1:
            inner = asyncio.ensure_future(asyncio.sleep(10))
            inner.cancel()
            await inner  # raises CancelledError here: the inner task's, not ours

    cfg = EngineConfig(consumers=1, max_attempts=3, backoff_base=0.01, backoff_max=0.02)
    async with Engine(cfg, handler=awaits_a_cancelled_task) as engine:
        await engine.publish({"x": 1})
        await engine.publish({"x": 2})
        await engine.join(timeout=5)
        snap = engine.snapshot()
    assert snap.acked == 2 and snap.queue.dead == 0
    assert snap.failovers == 0
    assert sorted(calls) == [1, 1, 2, 2]


class Outcome(BaseException):
    """Not an Exception: like pytest's fail/skip, gevent's Timeout or a framework's abort."""


async def test_a_base_exception_from_the_handler_is_a_failure_not_an_engine_crash() -> None:
    """A handler raising a BaseException that is not a stop request (KeyboardInterrupt,
    a cancellation of the consumer) fails that delivery; the engine keeps running."""

    async def aborts(d: Delivery) -> None:
        if d.body == "abort":
            raise Outcome("abort")

    cfg = EngineConfig(consumers=2, max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    async with Engine(cfg, handler=aborts) as engine:
        await engine.publish("abort")
        await engine.publish("fine")
        await engine.join(timeout=10)
        snap = engine.snapshot()
    assert snap.acked == 1 and snap.queue.dead == 1
    assert snap.dead_letters[0].last_error == "Outcome: abort"
    assert snap.failovers == 0


async def test_a_handler_calling_sys_exit_fails_that_delivery_not_the_process() -> None:
    """argparse in a handler meeting a bad message calls sys.exit(2): that delivery
    fails (retried, then dead-lettered); the engine and its other messages go on."""
    import argparse

    parser = argparse.ArgumentParser(prog="job", exit_on_error=False)
    parser.add_argument("--n", type=int, required=True)

    async def parses(d: Delivery) -> None:
        with contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args(d.body)

    cfg = EngineConfig(consumers=2, max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    async with Engine(cfg, handler=parses) as engine:
        await engine.publish(["--n", "1"])
        await engine.publish(["--bogus"])
        await engine.join(timeout=10)
        snap = engine.snapshot()
    assert snap.acked == 1 and snap.queue.dead == 1
    assert snap.dead_letters[0].last_error == "SystemExit: 2"


@pytest.mark.parametrize("prefetch", [1, 16])
async def test_a_handler_that_never_suspends_still_lets_the_loop_turn(prefetch: int) -> None:
    """A backlog handled by an async handler that never awaits (quick CPU work) is not
    drained in one step of the event loop: other tasks (heartbeats, the dashboard,
    signal handlers, publishers) get a turn while it runs."""
    n = 300

    async def busy(d: Delivery) -> None:
        end = time.perf_counter() + 0.0005  # half a millisecond of work, no await
        while time.perf_counter() < end:
            pass

    cfg = EngineConfig(consumers=2, min_consumers=0, prefetch=prefetch)
    async with Engine(cfg, handler=busy) as engine:
        await engine.scale_to(0)
        for i in range(n):
            await engine.publish(i)
        seen: list[int] = []
        await engine.scale_to(2)
        asyncio.get_running_loop().call_later(0.02, lambda: seen.append(engine.snapshot().acked))
        await engine.join(timeout=30)
    assert seen and seen[0] < n  # the callback ran while the backlog was being handled


async def test_a_batch_handler_that_never_suspends_still_lets_the_loop_turn() -> None:
    """The same for batches: a backlog of batches handled without an await does not
    hold the event loop until it is drained."""
    n = 400

    async def busy(batch: list[Delivery]) -> None:
        end = time.perf_counter() + 0.0005 * len(batch)
        while time.perf_counter() < end:
            pass

    cfg = EngineConfig(consumers=2, min_consumers=0, prefetch=8, batch_size=4)
    async with Engine(cfg, batch_handler=busy) as engine:
        await engine.scale_to(0)
        for i in range(n):
            await engine.publish(i)
        seen: list[int] = []
        await engine.scale_to(2)
        asyncio.get_running_loop().call_later(0.02, lambda: seen.append(engine.snapshot().acked))
        await engine.join(timeout=30)
    assert seen and seen[0] < n


@pytest.mark.parametrize("batch", [False, True])
async def test_a_busy_consumer_turns_the_loop_every_10ms_of_its_own_handling(batch: bool) -> None:
    """Handlers that never suspend (4 ms of work each, on a fake clock): each consumer
    hands the loop over after about 10 ms of its own handling, not after every message
    once the other consumers' time counts against it (one loop turn per message)."""
    clock = FakeClock()
    order: list[str] = []

    async def busy(d: Delivery) -> None:
        order.append(d.consumer_id)
        clock.block(0.004)  # CPU work: time passes, nothing else runs

    async def busy_batch(ds: list[Delivery]) -> None:
        for d in ds:
            await busy(d)
        return None

    cfg = EngineConfig(
        consumers=2,
        prefetch=2 if batch else 1,
        batch_size=2 if batch else 1,
        batch_linger=0.0,
        visibility_timeout=600.0,
        heartbeat_interval=100.0,
        heartbeat_timeout=300.0,
        seed=1,
    )
    handlers: dict[str, Any] = {"batch_handler": busy_batch} if batch else {"handler": busy}
    async with Engine(cfg, clock=clock, **handlers) as engine:
        await engine.publish_many(list(range(120)))
        await clock.run_until(lambda: engine.broker.outstanding() == 0, step=0.05)
    assert len(order) == 120
    runs = 1 + sum(1 for a, b in zip(order, order[1:], strict=False) if a != b)
    # A turn once its handling passes 10 ms: 3 messages (12 ms) per turn, the last run
    # shorter; 1 per turn would be 120 runs.
    assert runs <= 120 // 3 + 1
