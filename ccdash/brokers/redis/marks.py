"""Writes sent again after their reply was lost, and the one rule they follow.

A publish script leaves a mark in Redis (`pub:<token>`, `pubseq:<publisher>`) that
a copy sent again finds, so it adds nothing twice. The mark lives MARK_TTL: within
MARK_KEEP of the first send a write goes again as it was; past it, it only asks
for the mark (never sent blind), and a missing mark means the outcome is unknown.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ccdash.brokers.redis.scripts.delivery import MARK_KEEP


def past_mark(first_sent: float, now: float) -> bool:
    """Sent first this long ago, may Redis have dropped the write's mark?"""
    return now - first_sent > MARK_KEEP


class Op:
    """One queued command whose reply somebody awaits. One that leaves a mark has
    `check`, the command that only asks for the mark: sent instead of `cmd` when it
    goes again past MARK_KEEP (its reply is then the mark's value, or None)."""

    __slots__ = ("cmd", "future", "check", "first_sent")

    def __init__(self, cmd: Any, future: asyncio.Future[Any], check: Any | None = None) -> None:
        self.cmd = cmd
        self.future = future
        self.check = check
        self.first_sent: float | None = None

    def to_send(self, now: float) -> Any:
        """The command to send now (`now` on the clock of the first send)."""
        if self.check is None:
            return self.cmd
        if self.first_sent is None:
            self.first_sent = now
        return self.check if past_mark(self.first_sent, now) else self.cmd
