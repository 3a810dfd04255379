"""Whether this worker's heartbeat may have lapsed: the process was stopped (SIGSTOP,
a paused VM) or cut off from Redis for a heartbeat TTL. Its peers then take it for
dead and claim what it holds, read-ahead included, although by its own clock no
lease ran out. Until Redis has said which entries are still ours (see
Presence.keep_buffer), none is handed out: a peer may be doing that work already."""

from __future__ import annotations

import asyncio
import time
from typing import Any


class Lapse:
    """Heartbeats Redis took, and whether one may have been missed since we checked."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.on = False  # registered: peers judge us by our heartbeat
        self.beat_at = 0.0  # monotonic send time of the last heartbeat Redis took
        self.suspect = False  # a beat found our key gone, or came over a TTL late

    def start(self) -> None:
        """Registered: the heartbeat key was just written."""
        self.on = True
        self.beat_at = time.monotonic()

    def beaten(self, sent: float, fut: asyncio.Future[Any]) -> None:
        """A heartbeat (SET ... GET, sent at `sent`) was answered."""
        if fut.cancelled() or fut.exception() is not None:
            return
        if fut.result() is None or sent - self.beat_at >= self.ttl:  # our key was gone
            self.suspect = True
        self.beat_at = max(self.beat_at, sent)

    def beating(self) -> bool:
        """Did Redis take a heartbeat of ours within the last TTL?"""
        return time.monotonic() - self.beat_at < self.ttl

    def lapsed(self) -> bool:
        """May peers have taken what we hold (not checked since)?"""
        return self.on and (self.suspect or not self.beating())
