"""A batch consumer: hands its deliveries to the batch handler, up to `batch_size`
at a time (waiting at most `batch_linger` to fill a batch)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ccdash.engine.consumer import PROCESSING, TURN_EVERY, Consumer
from ccdash.interrupts import describe_error, is_stop_request


class BatchConsumer(Consumer):
    """A consumer of an engine with a batch handler (`batch_size` > 1)."""

    async def _work(self, loop: asyncio.AbstractEventLoop) -> None:
        clock = self.ctx.clock
        busy = 0.0  # its own handling since it last let the loop turn (as in Consumer)
        while await self._next(loop):
            await self._handle_batch()
            busy += clock.now() - self.started_at
            if busy > TURN_EVERY:
                busy = 0.0
                await asyncio.sleep(0)

    async def _handle_batch(self) -> None:
        ctx = self.ctx
        clock = ctx.clock
        size = ctx.batch_size
        deadline = clock.now() + ctx.batch_linger
        while len(self.buffer) < size and clock.now() < deadline and not self.draining:
            await self._idle.park_until(clock, deadline)
        batch = [self.buffer.popleft() for _ in range(min(size, len(self.buffer)))]
        if not batch:
            return
        self.state = PROCESSING
        self.batch = batch
        self.started_at = t0 = clock.now()
        failures: Mapping[str, Any] = {}
        whole: str | None = None
        try:
            result = await ctx.batch_handler(list(batch))  # type: ignore[misc]
            failures = result or {}
        except asyncio.CancelledError:
            whole = self._timeout_error("batch")
        except BaseException as exc:
            if is_stop_request(exc, self.task):  # a real Ctrl-C; the coroutine closed
                raise
            whole = describe_error(exc)
        t1 = await self._finish_run(t0, clock.now())
        self.batch = []
        per_message = (t1 - t0) / len(batch)
        for d in batch:
            err = whole if whole is not None else failures.get(d.message_id)
            if err is None:
                await self._acked(d, per_message)
            else:
                text = err if isinstance(err, str) else describe_error(err)
                await self._failed(d, text or "failed", per_message)
        if ctx.slots.refill(self, len(batch)):
            await ctx.slots.dispatch(self)
