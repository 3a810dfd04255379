"""A lease handed back unhandled (a drain: scale-down, a rolling update) puts its entry
back in the Redis worker's buffer for its other consumers. While it waits there the
heartbeat rounds keep it (Redis extends it), and its local deadline moves with it: it
is handed out again, not dropped as run out and reclaimed by Redis a visibility
timeout later with an attempt charged. On a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from support.redis_fixtures import lease
from test_redis_stall import VT, Guard, ShiftedClock

from ccdash.brokers.base import REASON_RELEASED

Make = Callable[..., Any]


async def test_an_entry_handed_back_and_kept_in_the_buffer_is_handed_out_again(
    redis_broker: Make,
) -> None:
    """Leased, handed back, waits in the buffer past half a lease: keeping the buffer
    extends it, so a consumer later gets it (it was dropped: its deadline never moved,
    the entry being taken for one handed out while the extension was on its way)."""
    clock = ShiftedClock()
    b = await redis_broker(worker="w", ttl=3.0, clock=clock, visibility_timeout=VT)
    await b.publish({"n": 1})
    d = await lease(b, "c1")
    assert await b.release([d.receipt], REASON_RELEASED) == 1  # back to the buffer
    clock.shift += VT * 0.6  # waits in the buffer: under half a lease left
    await b.presence.keep_buffer()  # a heartbeat round keeps it (Redis says: ours)
    clock.shift += VT * 0.6  # past its first deadline, well within the kept lease
    got = b.receive_nowait(["c2"])
    assert [(g.message_id, g.attempt) for g in got] == [(d.message_id, 1)]


async def test_a_handed_back_entry_held_after_a_stall_is_handed_out_once_kept(
    redis_broker: Make,
) -> None:
    """Handed back, then the worker stalls past the lease: the entry is held out of the
    buffer until the late tick keeps it, then handed out (it was dropped)."""
    clock = ShiftedClock()
    b = await redis_broker(worker="w", ttl=3.0, clock=clock, visibility_timeout=VT)
    guard = Guard(clock)
    b.stall_guard = guard
    await b.publish({"n": 1})
    d = await lease(b, "c1")
    assert await b.release([d.receipt], REASON_RELEASED) == 1
    clock.shift += VT + 1.0  # the stall
    assert b.receive_nowait(["c2"]) == [], "handed out before the stall was dealt with"
    assert len(b.book.stalled) == 1
    await b.keep_after_stall()  # the engine's late tick
    guard.until = None
    got = b.receive_nowait(["c2"])
    assert [(g.message_id, g.attempt) for g in got] == [(d.message_id, 1)]


async def test_a_handed_back_entry_waiting_in_the_buffer_is_not_charged_an_attempt(
    redis_broker: Make,
) -> None:
    """Real time, vt 1 s: leased, handed back, waits 1.2 s in the buffer (the heartbeat
    rounds keep it in Redis): the next consumer gets it on its first attempt (it got
    attempt 2: dropped locally, reclaimed by Redis as lease-expired)."""
    b = await redis_broker(worker="w", ttl=0.3, visibility_timeout=1.0)
    await b.publish({"n": 1})
    d = await lease(b, "c1")
    assert await b.release([d.receipt], REASON_RELEASED) == 1
    await asyncio.sleep(1.2)  # the wait itself is what is tested
    d2 = await lease(b, "c2", within=5)
    assert (d2.message_id, d2.attempt) == (d.message_id, 1)
    await b.ack(d2.receipt)
