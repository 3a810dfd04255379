"""The Redis write path's bookkeeping around a round trip whose outcome is unknown,
with a fake link (no redis-server): what a cancelled publisher leaves behind."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ccdash.backoff import Backoff
from ccdash.brokers.redis.flusher import Flusher
from ccdash.brokers.redis.scripts import SCRIPTS

ACK_SHA = SCRIPTS["ack"].sha


class FakeLink:
    """Holds the first round trip until cancelled; later ones refuse every ack (as
    Redis does for acks it took already) and answer the rest with 1."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = asyncio.Event()

    async def execute(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The replies of one round trip."""
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            await asyncio.Event().wait()  # the reply never comes: the caller is cancelled
        return [[b"0-1"] if cmd[1] == ACK_SHA else 1 for cmd in commands]

    def describe(self, exc: BaseException) -> str:
        """As RedisLink.describe."""
        return str(exc)


async def test_acks_resent_after_a_cancelled_publisher_are_not_counted_refused() -> None:
    """A publisher cancelled while its round trip (carrying acks) was on the way leaves
    those acks' outcome unknown: sent again and found acked, they are not 'refused,
    lease lost' (the same as after a dropped connection)."""
    link = FakeLink()
    fl = Flusher(
        link,  # type: ignore[arg-type]
        "p:",
        worker="w",
        vt_ms=30_000,
        on_lost_state=lambda: None,
        on_snapshot=lambda snap: None,
        backoff=Backoff(),
        publisher="pub",
    )
    fl.want_stats = False
    fl.last_stats = float("inf")  # no stats read in these round trips
    fl._parked = True  # the flusher task waits for work (not started here)
    fl.acks.append(b"$1\r\n0\r\n$3\r\n0-1\r\n$1\r\nx\r\n")
    fl.outbox.append((0, b"$1\r\n0\r\n$1\r\nm\r\n$1\r\n0\r\n$1\r\nx\r\n", None))
    sender = asyncio.create_task(fl.send_now())
    await asyncio.wait_for(link.entered.wait(), 5.0)
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    assert list(fl.acks), "the ack goes back in the queue"
    await fl.cycle()  # the retry: Redis says the ack's entry is no longer pending
    assert fl.late_rejected == 0
