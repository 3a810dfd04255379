"""A Redis worker stalled (SIGSTOPped, its loop blocked) just after a read parked in
Redis was served: the reply waits in the socket while the worker cannot run, and its
peers may take the entries over and finish them meanwhile. On a real redis-server;
the stall is the worker's clock jumping past the visibility timeout at that exact
round trip, its stall guard held at the time before it (as the engine's health
monitor leaves it until its late tick has kept what the worker holds)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from support.redis_fixtures import RedisServer, lease

from ccdash.brokers.redis import RedisBroker
from ccdash.brokers.redis.keys import GROUP
from ccdash.clock import MonotonicClock

Make = Callable[..., Any]
VT = 5.0


class ShiftedClock(MonotonicClock):
    """The real clock plus `shift` seconds: a stall is the shift growing at once."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = 0.0
        self.now = self._now

    def _now(self) -> float:
        return time.monotonic() + self.shift


class Guard:
    """The stall guard: held at `until` (the health monitor's last vouching) until the
    test says the late tick has run."""

    def __init__(self, clock: ShiftedClock) -> None:
        self.clock = clock
        self.until: float | None = clock.now() + 0.5

    def __call__(self) -> float:
        return self.clock.now() if self.until is None else self.until


def stall_on_parked_read(
    victim: RedisBroker,
    clock: ShiftedClock,
    monkeypatch: pytest.MonkeyPatch,
    during: Callable[[bytes, bytes], Awaitable[None]],
) -> asyncio.Event:
    """The next XREADGROUP BLOCK of `victim`'s reader that Redis answers with an entry:
    once answered, the process stalls (its clock jumps VT + 1 s) and `during(stream,
    entry id)` runs (what its peers do meanwhile) before the reader sees the reply.
    Returns an event set once such a read is on its way (parked in Redis)."""
    real = victim.reader.link.execute
    armed = [True]
    parked = asyncio.Event()

    async def execute(commands: Sequence[Any]) -> list[Any]:
        cmd = commands[0]
        blocking = cmd[0] == "XREADGROUP" and "BLOCK" in cmd
        if blocking:
            parked.set()
        replies: list[Any] = await real(commands)
        if armed[0] and blocking and replies[0]:
            armed[0] = False
            key, entries = replies[0][0]
            clock.shift += VT + 1.0
            await during(key, entries[0][0])
        return replies

    monkeypatch.setattr(victim.reader.link, "execute", execute)
    return parked


async def park_and_publish(
    victim: RedisBroker, peer: RedisBroker, parked: asyncio.Event
) -> asyncio.Task[None]:
    """A consumer of `victim` waits, so its reader parks in Redis (`parked`); `peer`
    publishes one message, which that parked read takes. Returns the consumer's task."""
    waiter = asyncio.create_task(victim.wait_ready())
    async with asyncio.timeout(5):
        await parked.wait()
    await peer.publish(b"m")
    return waiter


async def test_an_entry_a_peer_finished_during_the_stall_is_not_handled_again(
    redis_broker: Make, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parked read is served, then the worker stalls past the lease; a peer reclaims
    the entry (idle over the timeout) and acks it. When the worker runs again its reader
    buffers the reply, but no consumer gets the entry: its lease counts from when the
    read was sent, it ran out in the stall, and keeping it after the stall finds it gone.
    (It was handed out at once with a fresh lease: a second handling of work the worker
    did not hold when the stall began, as the worker-stall chaos run saw.)"""
    clock = ShiftedClock()
    victim = await redis_broker(worker="victim", clock=clock, visibility_timeout=VT)
    peer = await redis_broker(worker="peer", visibility_timeout=VT)
    guard = Guard(clock)
    victim.stall_guard = guard
    finished: list[str] = []

    async def peer_takes_over(key: bytes, eid: bytes) -> None:
        idle = str(int((VT + 1) * 1000))  # Redis's lease ran out too
        redis_server.command(
            "XCLAIM", key.decode(), GROUP, "victim", "0", eid.decode(), "IDLE", idle
        )
        d = await lease(peer, "p", within=10)  # its reaper reclaims it, then it reads it
        await peer.ack(d.receipt)
        await peer.flush()
        finished.append(d.message_id)

    parked = stall_on_parked_read(victim, clock, monkeypatch, peer_takes_over)
    waiter = await park_and_publish(victim, peer, parked)
    async with asyncio.timeout(15):
        await waiter  # the reply is buffered: the worker runs again
    assert len(finished) == 1
    assert victim.receive_nowait(["c"]) == [], "handed out before the stall was dealt with"
    await victim.keep_after_stall()  # the engine's late tick
    guard.until = None  # and judging goes on
    assert victim.receive_nowait(["c"]) == []
    assert victim.book.known() == set()
    assert victim.book.buffered == 0


async def test_an_entry_still_ours_after_the_stall_is_handed_out_once_kept(
    redis_broker: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same stall with no peer taking over: the entry waits until the late tick
    keeps it (Redis confirms it is still this worker's), then a waiting consumer gets it
    at once, first attempt, with a whole lease from then; it acks."""
    clock = ShiftedClock()
    victim = await redis_broker(worker="victim", ttl=3.0, clock=clock, visibility_timeout=VT)
    peer = await redis_broker(worker="peer", visibility_timeout=VT)
    guard = Guard(clock)
    victim.stall_guard = guard

    async def nobody(key: bytes, eid: bytes) -> None:
        return None

    parked = stall_on_parked_read(victim, clock, monkeypatch, nobody)
    waiter = await park_and_publish(victim, peer, parked)
    async with asyncio.timeout(10):
        await waiter
    assert victim.receive_nowait(["c"]) == [], "handed out before the stall was dealt with"
    consumer = asyncio.create_task(lease(victim, "c", within=10))
    await victim.keep_after_stall()
    guard.until = None
    kept_at = clock.now()
    d = await consumer
    assert (d.body, d.attempt) == (b"m", 1)
    assert kept_at - 1.0 < d.deadline - VT <= clock.now()
    await victim.ack(d.receipt)
    await victim.flush()
    assert not victim.book.leases


async def test_a_read_parked_in_redis_leaves_most_of_a_lease(redis_broker: Make) -> None:
    """A lease counts from when its read was sent, so a read parks in Redis for at most
    a quarter of the visibility timeout: a message published to a worker idle for most
    of a (short) timeout still reaches its consumer with three quarters of a lease left,
    not a lease run out before it was read (dropped, its attempt spent)."""
    vt = 1.0
    broker = await redis_broker(ttl=0.3, visibility_timeout=vt)
    waiter = asyncio.create_task(broker.wait_ready())
    await asyncio.sleep(0.8)  # idle: the reader parked in Redis meanwhile
    await broker.publish(b"late")
    async with asyncio.timeout(5):
        await waiter
    [d] = broker.receive_nowait(["c"])
    assert (d.body, d.attempt) == (b"late", 1)
    assert d.deadline - broker.clock.now() >= 0.7 * vt
    await broker.ack(d.receipt)


async def test_lost_redis_state_counts_the_entries_held_after_a_stall(
    redis_broker: Make, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis loses the group while the worker holds a lease and two read-ahead entries
    that ran out in a stall not yet dealt with (held: no consumer gets them until kept).
    An ack (of a fourth, its own lease taken out first) finds the group gone: all three
    are dropped, and the report says 3 (it said 1: the held ones were dropped but not
    counted)."""
    from support.polling import until

    from ccdash.brokers.base import ReceiptRejected

    clock = ShiftedClock()
    broker = await redis_broker(worker="w", clock=clock, visibility_timeout=VT)
    guard = Guard(clock)
    broker.stall_guard = guard
    await broker.publish_many([b"a", b"b", b"c", b"d"])
    await broker.wait_ready()  # one read takes the batch (one script call stored it)
    await until(lambda: broker.book.buffered == 4, 5, "all four read ahead")
    acked, kept = broker.receive_nowait(["c", "c"])
    clock.shift += VT + 1.0  # a stall: the guard still vouches for the time before it
    assert broker.receive_nowait(["c"]) == []
    assert len(broker.book.stalled) == 2  # held until keep_after_stall tells
    for key in [broker.keys.stream(0), broker.keys.priorities]:
        redis_server.command("DEL", key)
    with pytest.raises(ReceiptRejected):
        await broker.ack(acked.receipt)
    assert broker.lost_state_events == 1
    assert "3 local leases dropped" in caplog.text, caplog.text
    assert broker.book.known() == set()
