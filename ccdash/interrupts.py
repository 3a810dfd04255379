"""A real Ctrl-C, or a handler that raised KeyboardInterrupt itself?

A handler's KeyboardInterrupt (a library's `raise KeyboardInterrupt`, a sync handler
in its thread) is that delivery's failure, like any error: one bad message never stops
the rest. Only a KeyboardInterrupt a SIGINT could have raised stops the run. While the
event loop owns SIGINT (`loop.add_signal_handler`, as `ccdash --demo` and `ccdash
worker` do until the first Ctrl-C) a Ctrl-C raises nothing: it asks for a graceful stop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import signal
import threading
from collections.abc import Callable
from typing import Any


def _in_thread(handler: Callable[[Any], Any], arg: Any) -> Any:
    """Run a sync handler; its frame marks what it raised as raised in a thread."""
    return handler(arg)


async def call_in_thread(handler: Callable[[Any], Any], arg: Any) -> None:
    """Run a sync handler in a thread (it cannot stall the loop), then the awaitable
    it returns, if any (a sync wrapper of an async handler)."""
    result = await asyncio.to_thread(_in_thread, handler, arg)
    if inspect.isawaitable(result):
        await result


def is_stop_request(exc: BaseException, task: asyncio.Task[Any] | None = None) -> bool:
    """Should `exc`, out of a handler run by `task`, stop the run rather than fail the
    delivery? GeneratorExit when the coroutine is being closed (`task` is not the one
    running: a close comes from outside; with no `task`, always), and a KeyboardInterrupt
    a SIGINT raised: one under Python's default SIGINT handler (nothing else owns
    Ctrl-C), or out of the SIGINT handler in effect (asyncio.run's on a second Ctrl-C).
    Never what a thread raised: signals reach the main thread only."""
    if not isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
        return False
    codes = set()
    tb = exc.__traceback__
    while tb is not None:
        codes.add(tb.tb_frame.f_code)
        tb = tb.tb_next
    if _in_thread.__code__ in codes:
        return False
    if isinstance(exc, GeneratorExit):
        return task is None or _current_task() is not task
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGINT)
    if current is signal.default_int_handler:
        return True
    while isinstance(current, functools.partial):  # asyncio.run's: a partial of a method
        current = current.func
    code = getattr(getattr(current, "__func__", current), "__code__", None)
    return code is not None and code in codes


def is_ctrl_c(exc: BaseException) -> bool:
    """A real Ctrl-C out of user code (a KeyboardInterrupt a SIGINT raised): it stops
    ccdash as ever, never taken for that code's own failure."""
    return isinstance(exc, KeyboardInterrupt) and is_stop_request(exc)


def describe_error(exc: BaseException) -> str:
    """`TypeName: message`, bounded, of an exception from user code: for nack reasons,
    the DLQ and usage lines. A broken __str__ (even one raising SystemExit or a cancel)
    must not turn a failure into a crash; a real Ctrl-C in it still stops."""
    try:
        message = str(exc)
    except BaseException as raised:
        if is_ctrl_c(raised):
            raise
        message = "<str() of this exception failed>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def _current_task() -> asyncio.Task[Any] | None:
    """The task running now; None outside a running loop (a close at exit)."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None
