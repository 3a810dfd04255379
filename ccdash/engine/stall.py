"""Naming what blocks the event loop.

A handler that calls `time.sleep` (or computes for seconds) inside `async def`
stops every task of the process. The health tick sees the lag afterwards and
keeps the leases it held up (see health.py); this module tells who did it. A
small watchdog thread asks the loop to answer (`call_soon_threadsafe`) every
`period`; while an answer is overdue the loop is blocked, so the thread looks at
the task the loop is running and the innermost line of the loop's thread. When
the loop answers, the finished block is reported, in the loop, to `report`.

It measures real time only, so the engine runs it with the real clock.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType


@dataclass(frozen=True, slots=True)
class Blame:
    """What the loop was running while it was blocked."""

    seconds: float  # how long the loop did not answer
    consumer_id: str  # "" if the blocking task was not a consumer
    message_id: str
    where: str  # "file:line in func" of the innermost frame seen


Describe = Callable[["asyncio.Task[object] | None"], tuple[str, str] | None]


def frame_where(frame: FrameType | None) -> str:
    """`file:line in func` of a frame ("" for none)."""
    if frame is None:
        return ""
    code = frame.f_code
    return f"{os.path.basename(code.co_filename)}:{frame.f_lineno} in {code.co_name}"


class BlockSampler:
    """A watchdog thread that names the task blocking the event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        threshold: float,
        describe: Describe,
        report: Callable[[Blame], None],
    ) -> None:
        self.loop = loop
        self.threshold = threshold
        self.period = max(0.02, threshold / 2)
        self._describe = describe  # task -> (consumer id, message id), read off-loop
        self._report = report
        self._loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._asked: float | None = None  # when the unanswered ping was sent
        self._seen: Blame | None = None  # what was running while it went unanswered
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ccdash-stall-watch", daemon=True)

    def start(self) -> None:
        """Start watching (call from the loop's thread)."""
        self._loop_thread = threading.get_ident()
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; the thread ends within one period."""
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.period):
            with self._lock:
                asked = self._asked
                if asked is None:
                    self._asked = time.monotonic()
                    try:
                        self.loop.call_soon_threadsafe(self._answer)
                    except RuntimeError:  # the loop closed under us
                        return
                    continue
                if self._seen is not None or time.monotonic() - asked < self.threshold:
                    continue
            seen = self._sample()  # outside the lock: the loop may answer meanwhile
            with self._lock:
                if self._asked is asked and self._seen is None:
                    self._seen = seen

    def _sample(self) -> Blame:
        """Look at what the blocked loop's thread is running now."""
        task = asyncio.current_task(self.loop)
        where = frame_where(sys._current_frames().get(self._loop_thread))
        try:
            who = self._describe(task)
        except RuntimeError:  # a dict resized by the running loop: name no one
            who = None
        cid, mid = who or ("", "")
        return Blame(0.0, cid, mid, where)

    def _answer(self) -> None:
        """In the loop: the ping was answered; report a block seen meanwhile."""
        with self._lock:
            asked, seen = self._asked, self._seen
            self._asked = None
            self._seen = None
        if seen is not None and asked is not None:
            seconds = time.monotonic() - asked
            self._report(Blame(seconds, seen.consumer_id, seen.message_id, seen.where))
