"""The engine's tasks: one task group, every task tracked, and a stop that cannot hang.

Stopping gives every task a deadline to end: one that swallows its cancellation (a
handler catching it, a client's timeout wrapper) is abandoned with a warning, and
the task group (which would wait for it for ever) is left to close by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from ccdash.aio import cancel_and_wait, run_within
from ccdash.brokers.base import Broker
from ccdash.clock import Clock
from ccdash.engine.events import Emit, EventKind
from ccdash.text import counted

BROKER_CLOSE_DEADLINE = 30.0  # seconds closing a remote broker may take before it is left


class EngineTasks:
    """A task group whose running tasks are known, so a stop can give each a deadline."""

    def __init__(self, clock: Clock, emit: Emit) -> None:
        self.clock = clock
        self.emit = emit
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # running tasks of the group
        self._tg_exit: asyncio.Future[Any] | None = None  # a group left to close by itself

    async def open(self) -> None:
        """Enter the task group."""
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A task in the group, tracked until it ends (a stop waits for those)."""
        assert self._tg is not None
        task = self._tg.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def running(self) -> list[str]:
        """The names of the group's tasks that have not ended."""
        return sorted(t.get_name() for t in self._tasks if not t.done())

    async def close(self) -> list[str]:
        """Cancel every task and leave the group; returns (and reports) the names of
        tasks abandoned because they ignored cancellation past their deadline."""
        assert self._tg is not None
        # A task failing as it is cancelled (a write failing on its way out) makes the
        # group cancel us while we wait: finish waiting, then hand that cancellation to
        # the group, which swallows its own and raises the task's error.
        waiting = asyncio.ensure_future(
            cancel_and_wait(self.clock, list(self._tasks), "engine stop")
        )
        cancelled: asyncio.CancelledError | None = None
        while True:
            try:
                left = await asyncio.shield(waiting)
                break
            except asyncio.CancelledError as exc:
                if waiting.cancelled():
                    raise
                cancelled = exc
        if not left:
            if cancelled is None:
                await self._tg.__aexit__(None, None, None)
            else:
                await self._tg.__aexit__(type(cancelled), cancelled, cancelled.__traceback__)
            return []
        self._tg_exit = asyncio.ensure_future(self._tg.__aexit__(None, None, None))
        self._tg_exit.add_done_callback(lambda f: f.cancelled() or f.exception())
        names = sorted(t.get_name() for t in left if isinstance(t, asyncio.Task))
        self.emit(
            EventKind.TASKS_ABANDONED,
            f"engine stopped without {counted(len(left), 'task')} "
            f"that ignored cancellation: {', '.join(names)}",
            tasks=", ".join(names),
        )
        if cancelled is not None:
            raise cancelled
        return names


async def close_broker(clock: Clock, broker: Broker) -> None:
    """Close a broker, leaving it after BROKER_CLOSE_DEADLINE seconds (a remote one that
    no longer answers must not hang the stop); a close that fails raises."""
    await run_within(clock, broker.close(), BROKER_CLOSE_DEADLINE, "closing the broker")
