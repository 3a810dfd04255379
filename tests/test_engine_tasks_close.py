"""Closing the engine's task group when a task fails as it is cancelled (an ack or a
lease whose SQLite write fails on the way out): the failure is raised, not the
cancellation the group sent its host."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import MagicMock

import pytest

from ccdash.brokers.base import BrokerError
from ccdash.clock import MonotonicClock
from ccdash.engine.tasks import EngineTasks


async def test_a_task_failing_as_it_is_cancelled_raises_its_error_from_close() -> None:
    """The group cancels its host when a task fails; when that happened while close was
    waiting for the cancelled tasks, the old code let the CancelledError out and never
    left the group (the demo on SQLite under load ended with CancelledError, not its
    one-line error)."""
    tasks = EngineTasks(MonotonicClock(), MagicMock())
    await tasks.open()

    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0)
            raise BrokerError("write failed: disk I/O error") from None

    tasks.spawn(fails_on_cancel(), "consumer c1")
    await asyncio.sleep(0)
    with pytest.raises(BaseExceptionGroup) as info:
        await tasks.close()
    assert [type(e) for e in info.value.exceptions] == [BrokerError]
    task: Any = asyncio.current_task()
    assert task.cancelling() == 0
