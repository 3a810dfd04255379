"""Waiting for tasks with a deadline on the injected clock.

Stopping must not hang: a task may swallow its cancellation (a client library's
timeout wrapper can turn it into a TimeoutError that a retry loop then catches,
a user's handler can catch it). So a cancelled task is waited for with a
deadline; one still running then is abandoned with a logged warning, never
awaited for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, TypeVar, cast

from ccdash.clock import Clock, MonotonicClock

log = logging.getLogger("ccdash")

T = TypeVar("T")

CANCEL_DEADLINE = 5.0  # seconds a cancelled task gets to end before it is abandoned

# Signals that stop a run gracefully (handlers finish, leases go back, reports and
# recordings complete): Ctrl-C, a service manager's stop, and SIGHUP, which a closed
# terminal or ssh session sends and whose default action kills the process mid-run.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_signals() -> list[signal.Signals]:
    """The STOP_SIGNALS this process acts on: not SIGHUP if it was started ignoring it
    (`nohup`: the user asked the run to outlive its terminal)."""
    return [
        s
        for s in STOP_SIGNALS
        if not (s == signal.SIGHUP and signal.getsignal(s) is signal.SIG_IGN)
    ]


async def wait_tasks(
    clock: Clock, tasks: Iterable[asyncio.Future[Any]], within: float
) -> set[asyncio.Future[Any]]:
    """Wait up to `within` seconds of `clock` for `tasks` to end; returns those still
    running (never cancels anything)."""
    pending = {t for t in tasks if not t.done()}
    if not pending:
        return pending
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def check(_: object = None) -> None:
        if not ended.done() and all(t.done() for t in pending):
            ended.set_result(None)

    for t in pending:
        t.add_done_callback(check)

    def time_up() -> None:
        if not ended.done():
            ended.set_result(None)

    timer = clock.call_at(clock.now() + within, time_up)
    try:
        await ended
    finally:
        timer.cancel()
        for t in pending:
            t.remove_done_callback(check)
    return {t for t in pending if not t.done()}


async def cancel_and_wait(
    clock: Clock,
    tasks: Iterable[asyncio.Future[Any] | None],
    what: str,
    within: float = CANCEL_DEADLINE,
) -> set[asyncio.Future[Any]]:
    """Cancel `tasks` and wait (up to `within` seconds) for them to end, cancelling once more
    half-way for one that swallowed the first. Those still running are abandoned
    with a warning naming them and `what` was stopping; they are returned."""
    live = [t for t in tasks if t is not None]
    for t in live:
        t.cancel()
    left = await wait_tasks(clock, live, within / 2)
    for t in left:
        t.cancel()
    left = await wait_tasks(clock, left, within / 2)
    for t in left:
        name = t.get_name() if isinstance(t, asyncio.Task) else repr(t)
        log.warning("%s: task %s ignored cancellation for %.1f s; abandoned", what, name, within)
        t.add_done_callback(consume_outcome)
    for t in live:
        if t.done():
            consume_outcome(t)
    return left


async def run_within(
    clock: Clock, coro: Coroutine[Any, Any, Any], within: float, what: str
) -> bool:
    """Run `coro` for up to `within` seconds; past that it is cancelled (and abandoned
    if it ignores that). True if it finished in time; its exception, if any, is raised."""
    task = asyncio.ensure_future(coro)
    if await wait_tasks(clock, [task], within):
        await cancel_and_wait(clock, [task], what)
        return False
    task.result()
    return True


async def in_daemon_thread(fn: Callable[[], T], discard: Callable[[T], None]) -> T:
    """`fn()` on a daemon thread of its own, awaited. Unlike `asyncio.to_thread`'s
    threads, which the interpreter joins at exit, one still blocked when its caller is
    cancelled (Ctrl-C while it waits for another process's lock) does not keep the
    process alive; what it returns after its caller left goes to `discard`."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def hand_over(result: T | None, exc: BaseException | None) -> None:
        if fut.cancelled():
            if exc is None:
                discard(cast(T, result))
        elif exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(cast(T, result))

    def run() -> None:
        result: T | None = None
        exc: BaseException | None = None
        try:
            result = fn()
        except BaseException as e:  # handed to the awaiting caller
            exc = e
        try:
            loop.call_soon_threadsafe(hand_over, result, exc)
        except RuntimeError:  # the loop is gone: nobody will use it
            if exc is None:
                discard(cast(T, result))
        finally:
            with _off_loop_lock:
                _off_loop.discard(thread)

    thread = threading.Thread(target=run, name="ccdash-off-loop", daemon=True)
    with _off_loop_lock:
        _off_loop.add(thread)
    thread.start()
    return await fut


_off_loop: set[threading.Thread] = set()  # in_daemon_thread's threads still running
_off_loop_lock = threading.Lock()


@contextlib.contextmanager
def off_loop_threads_ended(within: float) -> Iterator[None]:
    """On leaving, wait up to `within` seconds for the `in_daemon_thread` threads
    started inside to end: one its caller left (a signal cancelled the run) may still
    be creating a file the caller then removes. One still running after that is left
    to end with the process, as in_daemon_thread intends."""
    with _off_loop_lock:
        before = set(_off_loop)
    try:
        yield
    finally:
        with _off_loop_lock:
            started = _off_loop - before
        deadline = time.monotonic() + within
        for thread in started:
            thread.join(max(0.0, deadline - time.monotonic()))


def first_error(exc: BaseException) -> BaseException:
    """What failed first in a task group's error (its first leaf), or `exc` itself."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def consume_outcome(fut: asyncio.Future[Any]) -> None:
    """Retrieve a finished task's outcome, so asyncio does not report it as never retrieved."""
    if not fut.cancelled():
        fut.exception()


def run_bounded(main: Coroutine[Any, Any, T], *, within: float = 1.0) -> T:
    """`asyncio.run(main)`, except that tasks still running when `main` returns are
    cancelled and given `within` seconds, then abandoned with a warning (asyncio.run
    would wait for a task that ignores cancellation for ever)."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        left: set[asyncio.Task[Any]] = set()
        try:
            left = asyncio.all_tasks(loop)
            if left:
                loop.run_until_complete(cancel_and_wait(MonotonicClock(), left, "exiting", within))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            for t in left:  # a KeyboardInterrupt out of the clean-up (a second Ctrl-C) skipped
                if t.done():  # cancel_and_wait's: no 'Task exception was never retrieved'
                    consume_outcome(t)
            asyncio.set_event_loop(None)
            if not asyncio.all_tasks(loop):
                loop.close()  # else left open: closing would destroy the abandoned task
