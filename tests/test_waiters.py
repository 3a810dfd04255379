"""Waiters, the one parked-future wake-up helper: wake one or all, fail all, deadlines,
and no wake-up lost to a waiter that leaves."""

from __future__ import annotations

import asyncio

import pytest

from ccdash.clock import FakeClock, settle
from ccdash.waiters import Waiters


async def parked(w: Waiters, n: int) -> list[asyncio.Task[None]]:
    """`n` tasks parked on `w`, in order."""
    tasks = [asyncio.create_task(w.park()) for _ in range(n)]
    await settle()
    assert len(w) == n
    return tasks


async def test_wake_hands_a_turn_to_the_oldest_waiter_only() -> None:
    w = Waiters()
    a, b, c = await parked(w, 3)
    assert w.wake() == 1
    await settle()
    assert a.done() and not b.done() and not c.done()
    assert w.wake(5) == 2  # only two were left
    await settle()
    assert b.done() and c.done()
    assert not w and w.wake() == 0


async def test_wake_all_wakes_everyone_parked() -> None:
    w = Waiters()
    tasks = await parked(w, 3)
    w.wake_all()
    await settle()
    assert all(t.done() and t.exception() is None for t in tasks)
    assert not w


async def test_fail_all_raises_in_every_waiter() -> None:
    w = Waiters()
    tasks = await parked(w, 2)
    w.fail_all(ConnectionError("closed"))
    await settle()
    for t in tasks:
        with pytest.raises(ConnectionError):
            t.result()
    assert not w


async def test_a_cancelled_waiter_leaves_and_is_never_handed_a_turn() -> None:
    w = Waiters()
    a, b = await parked(w, 2)
    a.cancel()
    await settle()
    assert a.cancelled() and len(w) == 1  # taken out: `if w:` means someone is parked
    assert w.wake() == 1  # the turn goes to b, not to the one that left
    await settle()
    assert b.done() and not w


async def test_a_waiter_cancelled_with_a_turn_in_flight_passes_it_on() -> None:
    """Woken (its future done) but cancelled before it ran: the next waiter gets the
    turn, or it would wait for another one (a publisher for another free slot)."""
    w = Waiters()
    a, b, c = await parked(w, 3)
    assert w.wake() == 1  # a's turn...
    a.cancel()  # ...but a is cancelled before it runs
    await settle()
    assert a.cancelled()
    assert b.done() and b.exception() is None  # the turn went on to b
    assert not c.done() and len(w) == 1  # and no further


async def test_a_waiter_cancelled_after_wake_all_wakes_no_one_else() -> None:
    """wake_all woke everyone there was: a waiter leaving after it has no turn to pass on."""
    w = Waiters()
    (a,) = await parked(w, 1)
    w.wake_all()
    a.cancel()
    (later,) = await parked(w, 1)
    await settle()
    assert a.cancelled() and not later.done()
    later.cancel()


async def test_a_wake_before_the_park_is_not_lost_to_a_waiter_that_looks_first() -> None:
    """Level-triggered: a waiter looks at its condition and parks in the same step. A
    wake-up while nobody is parked (the waiter's task not started yet) wakes no one, and
    none is needed: the waiter sees the change before it parks."""
    w = Waiters()
    work: list[int] = []

    async def consumer() -> int:
        while not work:
            await w.park()
        return work.pop()

    task = asyncio.create_task(consumer())  # not run yet
    work.append(1)
    w.wake_all()  # nobody parked
    assert await asyncio.wait_for(task, 1) == 1
    task = asyncio.create_task(consumer())
    await settle()
    assert len(w) == 1  # parked now: the next change wakes it
    work.append(2)
    w.wake_all()
    assert await asyncio.wait_for(task, 1) == 2


async def test_park_until_returns_false_at_the_deadline_and_leaves() -> None:
    clock = FakeClock()
    w = Waiters()
    task = asyncio.create_task(w.park_until(clock, clock.now() + 5))
    await clock.advance(4.9)
    assert not task.done() and len(w) == 1
    await clock.advance(0.1)
    assert task.result() is False
    assert not w and w.wake() == 0


async def test_park_until_returns_true_when_woken_first_and_drops_its_timer() -> None:
    clock = FakeClock()
    w = Waiters()
    task = asyncio.create_task(w.park_until(clock, clock.now() + 5))
    await settle()
    w.wake_all()
    await settle()
    assert task.result() is True
    assert clock.next_timer() is None


async def test_park_until_cancelled_leaves_and_drops_its_timer() -> None:
    clock = FakeClock()
    w = Waiters()
    task = asyncio.create_task(w.park_until(clock, clock.now() + 5))
    await settle()
    task.cancel()
    await settle()
    assert task.cancelled() and not w
    assert clock.next_timer() is None


async def test_park_until_with_a_turn_in_flight_passes_it_on_when_cancelled() -> None:
    clock = FakeClock()
    w = Waiters()
    a = asyncio.create_task(w.park_until(clock, clock.now() + 5))
    b = asyncio.create_task(w.park())
    await settle()
    w.wake()
    a.cancel()
    await settle()
    assert a.cancelled() and b.done()
