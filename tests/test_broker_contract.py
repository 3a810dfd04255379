"""The memory broker against "Contract: queue semantics", on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ccdash.brokers.base import (
    REASON_CONSUMER_FAILED,
    REASON_EXPIRED,
    REASON_FAILED,
    REASON_RELEASED,
    BrokerClosed,
    Delivery,
    QueueConfig,
    QueueFull,
    ReceiptRejected,
)
from ccdash.brokers.deadlines import DeadlineBuckets
from ccdash.brokers.memory import MemoryBroker
from ccdash.clock import FakeClock, settle

Make = Callable[..., MemoryBroker]


async def lease(broker: MemoryBroker, holder: str = "c") -> Delivery:
    """Receive exactly one message for `holder`."""
    [delivery] = await broker.receive([holder])
    return delivery


# -- leasing ----------------------------------------------------------------


async def test_receive_sets_deadline_to_now_plus_visibility_timeout(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """A delivery's lease runs out one visibility timeout after the receive."""
    broker = memory_broker(visibility_timeout=12.5)
    mid = await broker.publish(b"x")
    await fake_clock.advance(3.0)
    d = await lease(broker, "alice")
    assert (d.message_id, d.consumer_id, d.attempt) == (mid, "alice", 1)
    assert d.deadline == fake_clock.now() + 12.5
    assert broker.stats().in_flight == 1


async def test_each_delivery_gets_a_fresh_receipt(memory_broker: Make) -> None:
    """Two messages, and two deliveries of one message, never share a receipt."""
    broker = memory_broker()
    await broker.publish(b"a")
    await broker.publish(b"b")
    first, second = await broker.receive(["c1", "c2"])
    await broker.nack(first.receipt, delay=0)
    again = await lease(broker)
    assert again.message_id == first.message_id
    assert len({first.receipt, second.receipt, again.receipt}) == 3


async def test_receive_gives_the_ith_message_to_the_ith_holder(memory_broker: Make) -> None:
    """Batch receive leases in queue order, one message per holder, as many as are ready."""
    broker = memory_broker()
    ids = [await broker.publish(i) for i in range(2)]
    got = await broker.receive(["a", "b", "c"])
    assert [(d.message_id, d.consumer_id) for d in got] == [(ids[0], "a"), (ids[1], "b")]
    assert await broker.receive(["d"]) == []


async def test_attempt_increases_by_one_per_delivery(memory_broker: Make) -> None:
    """Every redelivery of a message carries the next attempt number."""
    broker = memory_broker(max_attempts=5)
    await broker.publish(b"x")
    attempts = []
    for _ in range(3):
        d = await lease(broker)
        attempts.append(d.attempt)
        await broker.nack(d.receipt, delay=0)
    assert attempts == [1, 2, 3]
    assert broker.stats().redelivered == 2


# -- ack ----------------------------------------------------------------------


async def test_ack_deletes_the_message(memory_broker: Make, fake_clock: FakeClock) -> None:
    """An acked message is gone for good: not ready, not leased, never redelivered."""
    broker = memory_broker(visibility_timeout=5)
    await broker.publish(b"x")
    await broker.ack((await lease(broker)).receipt)
    await fake_clock.advance(60)
    stats = broker.stats()
    assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (0, 0, 0, 0)
    assert stats.acked == 1
    assert await broker.receive(["c"]) == []


async def test_ack_twice_is_rejected(memory_broker: Make) -> None:
    """A receipt is good for one ack only."""
    broker = memory_broker()
    await broker.publish(b"x")
    d = await lease(broker)
    await broker.ack(d.receipt)
    with pytest.raises(ReceiptRejected):
        await broker.ack(d.receipt)
    assert broker.stats().acked == 1


async def test_ack_of_stale_receipt_is_rejected(memory_broker: Make, fake_clock: FakeClock) -> None:
    """After a lease expired and the message went to someone else, the old receipt fails."""
    broker = memory_broker(visibility_timeout=5)
    await broker.publish(b"x")
    old = await lease(broker, "slow")
    await fake_clock.advance(5)
    new = await lease(broker, "fast")
    assert new.message_id == old.message_id
    with pytest.raises(ReceiptRejected):
        await broker.ack(old.receipt)
    await broker.ack(new.receipt)  # the new holder's lease was not disturbed
    assert broker.stats().acked == 1


async def test_ack_at_the_deadline_is_rejected_and_requeues(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """An ack arriving when the deadline has passed, before any reap, is too late."""
    broker = memory_broker(visibility_timeout=5)
    await broker.publish(b"x")
    d = await lease(broker)
    fake_clock._now = d.deadline  # no timer, no reap in between
    with pytest.raises(ReceiptRejected):
        await broker.ack(d.receipt)
    stats = broker.stats()
    assert (stats.ready, stats.in_flight, stats.acked) == (1, 0, 0)


async def test_ack_after_release_is_rejected(memory_broker: Make) -> None:
    """A released lease can no longer be acked."""
    broker = memory_broker()
    await broker.publish(b"x")
    d = await lease(broker)
    assert await broker.release([d.receipt], REASON_RELEASED) == 1
    with pytest.raises(ReceiptRejected):
        await broker.ack(d.receipt)
    assert broker.stats().ready == 1


async def test_ack_many_returns_only_rejected_receipts(memory_broker: Make) -> None:
    """ack_many acks the live receipts and hands back the dead ones."""
    broker = memory_broker()
    await broker.publish(b"a")
    await broker.publish(b"b")
    a, b = await broker.receive(["c", "c"])
    await broker.ack(a.receipt)
    assert await broker.ack_many([a.receipt, b.receipt]) == [a.receipt]
    assert broker.stats().acked == 2


# -- nack and backoff -------------------------------------------------------------


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    """Retry delays are uniform in [0, min(max, base * 2**(attempt-1))]."""
    config = QueueConfig(backoff_base=0.5, backoff_max=10.0, seed=3)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, 10.0), (500, 10.0)]:
        draws = [config.backoff(attempt) for _ in range(2000)]
        assert all(0.0 <= x <= ceiling for x in draws)
        # full jitter: the draws span the whole range, not just near the ceiling
        assert min(draws) < 0.05 * ceiling
        assert max(draws) > 0.95 * ceiling


async def test_nack_hides_the_message_for_its_backoff(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """A nacked message is delayed for exactly the drawn backoff, then ready again."""
    for seed in range(5):
        broker = memory_broker(backoff_base=2.0, backoff_max=30.0, seed=seed)
        expected = QueueConfig(backoff_base=2.0, backoff_max=30.0, seed=seed).backoff(1)
        await broker.publish(b"x")
        start = fake_clock.now()
        assert await broker.nack((await lease(broker)).receipt, "boom") is False
        assert broker.stats().delayed == 1
        fake_clock._now = start + expected * 0.999
        assert broker.ready_count() == 0
        assert await broker.receive(["c"]) == []
        fake_clock._now = start + expected
        assert broker.ready_count() == 1
        await broker.ack((await lease(broker)).receipt)


async def test_nacked_message_is_ready_once_the_cap_has_passed(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """Whatever the jitter draws, a retry is visible once the capped ceiling has passed."""
    broker = memory_broker(backoff_base=1.0, backoff_max=3.0, max_attempts=10)
    await broker.publish(b"x")
    for attempt in range(1, 7):
        d = await lease(broker)
        assert d.attempt == attempt
        await broker.nack(d.receipt)
        await fake_clock.advance(min(3.0, 2.0 ** (attempt - 1)))
        assert broker.ready_count() == 1


async def test_nack_with_explicit_delay(memory_broker: Make, fake_clock: FakeClock) -> None:
    """`delay=` overrides the backoff; zero makes the message ready at once."""
    broker = memory_broker()
    await broker.publish(b"x")
    await broker.nack((await lease(broker)).receipt, delay=0)
    assert broker.ready_count() == 1
    await broker.nack((await lease(broker)).receipt, delay=7.0)
    await fake_clock.advance(6.9)
    assert broker.ready_count() == 0
    await fake_clock.advance(0.1)
    assert broker.ready_count() == 1


async def test_delayed_retries_come_due_in_deadline_order(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """A short retry delay is not held back by a longer one nacked before it."""
    broker = memory_broker()
    await broker.publish(b"long")
    await broker.publish(b"short")
    long, short = await broker.receive(["a", "b"])
    await broker.nack(long.receipt, delay=0.04)
    await broker.nack(short.receipt, delay=0.01)
    await fake_clock.advance(0.02)
    assert [d.body for d in await broker.receive(["c", "c"])] == [b"short"]


async def test_defer_delays_without_using_an_attempt(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """A deferred message comes back after the delay as the same attempt, never dead-lettered."""
    broker = memory_broker(max_attempts=1)
    await broker.publish(b"x")
    d = await lease(broker)
    await broker.defer(d.receipt, 2.0)
    with pytest.raises(ReceiptRejected):
        await broker.ack(d.receipt)
    await fake_clock.advance(1.99)
    assert broker.ready_count() == 0
    await fake_clock.advance(0.01)
    again = await lease(broker)
    assert (again.message_id, again.attempt) == (d.message_id, 1)
    assert broker.stats().dead == 0


# -- expiry -----------------------------------------------------------------------


async def test_expired_lease_is_visible_again_at_once(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """When a lease runs out the message is ready immediately, as the next attempt."""
    broker = memory_broker(visibility_timeout=5)
    await broker.publish(b"x")
    first = await lease(broker, "a")
    await fake_clock.advance(4.99)
    assert broker.stats().in_flight == 1
    await fake_clock.advance(0.01)
    stats = broker.stats()
    assert (stats.ready, stats.delayed, stats.in_flight) == (1, 0, 0)
    again = await lease(broker, "b")
    assert (again.message_id, again.attempt) == (first.message_id, 2)


async def test_expired_lease_cannot_be_nacked_or_extended(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """Once its deadline passed, a receipt is rejected by nack and extend as well."""
    broker = memory_broker(visibility_timeout=5)
    await broker.publish(b"x")
    d = await lease(broker)
    await fake_clock.advance(5)
    with pytest.raises(ReceiptRejected):
        await broker.nack(d.receipt)
    with pytest.raises(ReceiptRejected):
        await broker.extend(d.receipt, 10)
    assert broker.stats().ready == 1


async def test_extended_lease_expires_in_deadline_order(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """A lease extended to a deadline before a newer lease's still expires on time."""
    broker = memory_broker(visibility_timeout=30)
    await broker.publish(b"a")
    await broker.publish(b"b")
    a = await lease(broker, "a")
    await fake_clock.advance(0.02)
    b = await lease(broker, "b")
    assert await broker.extend(a.receipt, 29.99) < b.deadline
    await fake_clock.advance(29.995)
    assert broker.holder_counts() == {"b": 1}
    with pytest.raises(ReceiptRejected):
        await broker.nack(a.receipt)


async def test_lowered_visibility_timeout_applies_to_new_leases(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """After the timeout is lowered, new leases expire on their own sooner deadline."""
    broker = memory_broker(visibility_timeout=30)
    await broker.publish(b"old")
    await broker.publish(b"new")
    await lease(broker, "a")
    broker.config.visibility_timeout = 5
    b = await lease(broker, "b")
    assert b.deadline == fake_clock.now() + 5
    await fake_clock.advance(5)
    assert broker.holder_counts() == {"a": 1}
    assert broker.stats().ready == 1


async def test_long_extend_does_not_delay_newer_leases(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """A lease extended far past the timeout leaves newer leases expiring on time."""
    broker = memory_broker(visibility_timeout=10)
    await broker.publish(b"long")
    await broker.publish(b"short")
    a = await lease(broker, "a")
    await broker.extend(a.receipt, 100)
    await lease(broker, "b")
    await fake_clock.advance(10)
    assert broker.holder_counts() == {"a": 1}
    await fake_clock.advance(89.99)
    assert broker.holder_counts() == {"a": 1}
    await fake_clock.advance(0.01)
    assert broker.holder_counts() == {}
    assert [x.deadline for x in broker.leases()] == []


# -- dead letters -----------------------------------------------------------------


async def test_nack_at_max_attempts_dead_letters_as_failed(memory_broker: Make) -> None:
    """The last allowed failure sends the message to the DLQ with reason and error."""
    broker = memory_broker(max_attempts=2)
    mid = await broker.publish({"n": 1}, priority=3)
    assert await broker.nack((await lease(broker)).receipt, "first", delay=0) is False
    assert await broker.nack((await lease(broker)).receipt, "second") is True
    [dead] = broker.dead_letters()
    assert (dead.message_id, dead.reason, dead.attempts) == (mid, REASON_FAILED, 2)
    assert (dead.last_error, dead.priority, dead.body) == ("second", 3, {"n": 1})
    assert [(h.attempt, h.outcome, h.error) for h in dead.history] == [
        (1, REASON_FAILED, "first"),
        (2, REASON_FAILED, "second"),
    ]
    stats = broker.stats()
    assert (stats.dead, stats.dead_lettered, stats.ready, stats.delayed) == (1, 1, 0, 0)


async def test_expiry_at_max_attempts_dead_letters_as_lease_expired(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """A message whose every lease ran out is dead-lettered as lease-expired."""
    broker = memory_broker(max_attempts=2, visibility_timeout=5)
    await broker.publish(b"x")
    for _ in range(2):
        await lease(broker)
        await fake_clock.advance(5)
    [dead] = broker.dead_letters()
    assert (dead.reason, dead.attempts) == (REASON_EXPIRED, 2)
    assert dead.last_error
    assert broker.stats().ready == 0


async def test_consumer_failure_counts_as_an_attempt(memory_broker: Make) -> None:
    """A lease released because its consumer died is redelivered as the next attempt."""
    broker = memory_broker(max_attempts=3)
    await broker.publish(b"x")
    await lease(broker, "dies")
    assert await broker.release_holder("dies", REASON_CONSUMER_FAILED, "killed") == 1
    assert (await lease(broker)).attempt == 2


async def test_poison_message_dead_letters_as_consumer_failed(memory_broker: Make) -> None:
    """A message that keeps killing its consumers ends in the DLQ as consumer-failed."""
    broker = memory_broker(max_attempts=2)
    await broker.publish(b"poison")
    for holder in ("c1", "c2"):
        await lease(broker, holder)
        await broker.release_holder(holder, REASON_CONSUMER_FAILED, f"{holder} crashed")
    [dead] = broker.dead_letters()
    assert (dead.reason, dead.attempts, dead.last_error) == (
        REASON_CONSUMER_FAILED,
        2,
        "c2 crashed",
    )
    assert [h.consumer_id for h in dead.history] == ["c1", "c2"]


async def test_release_does_not_use_up_an_attempt(memory_broker: Make) -> None:
    """A lease handed back unprocessed is redelivered as the same attempt, never dead-lettered."""
    broker = memory_broker(max_attempts=1)
    await broker.publish(b"x")
    for _ in range(3):
        d = await lease(broker)
        assert d.attempt == 1
        assert await broker.release([d.receipt], REASON_RELEASED) == 1
    stats = broker.stats()
    assert (stats.ready, stats.dead, stats.redelivered) == (1, 0, 0)


async def test_release_counts_only_live_leases(memory_broker: Make) -> None:
    """release returns how many receipts still held a lease."""
    broker = memory_broker()
    await broker.publish(b"a")
    await broker.publish(b"b")
    a, b = await broker.receive(["c", "c"])
    await broker.ack(a.receipt)
    assert await broker.release([a.receipt, b.receipt, 999_999], REASON_RELEASED) == 1


async def test_release_holder_releases_only_that_holders_leases(memory_broker: Make) -> None:
    """Other holders keep their leases when one holder's are released."""
    broker = memory_broker()
    for i in range(5):
        await broker.publish(i)
    got = await broker.receive(["x", "y", "x", "y", "x"])
    assert await broker.release_holder("x", REASON_RELEASED) == 3
    assert broker.holder_counts() == {"y": 2}
    assert {lease.consumer_id for lease in broker.leases()} == {"y"}
    for d in got:
        if d.consumer_id == "y":
            await broker.ack(d.receipt)
    assert broker.stats().ready == 3
    assert await broker.release_holder("nobody", REASON_RELEASED) == 0


# -- extend -----------------------------------------------------------------------


async def test_extend_pushes_the_deadline(memory_broker: Make, fake_clock: FakeClock) -> None:
    """An extended lease survives its original deadline and expires after the new one."""
    broker = memory_broker(visibility_timeout=5)
    await broker.publish(b"x")
    d = await lease(broker)
    await fake_clock.advance(4)
    assert await broker.extend(d.receipt, 10) == fake_clock.now() + 10
    await fake_clock.advance(9.99)
    assert broker.stats().in_flight == 1
    assert broker.leases()[0].deadline == d.deadline + 9
    await fake_clock.advance(0.01)
    assert broker.stats().in_flight == 0
    with pytest.raises(ReceiptRejected):
        await broker.ack(d.receipt)


async def test_extended_lease_can_still_be_acked(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """Extending keeps the receipt: the holder acks with the one it has."""
    broker = memory_broker(visibility_timeout=5)
    await broker.publish(b"x")
    d = await lease(broker)
    await broker.extend(d.receipt, 20)
    await fake_clock.advance(15)
    await broker.ack(d.receipt)
    assert broker.stats().acked == 1


# -- ordering ---------------------------------------------------------------------


async def test_higher_priority_first_then_fifo(memory_broker: Make) -> None:
    """Delivery order is by priority, highest first, then by publish order."""
    broker = memory_broker()
    for name, prio in [("a", 0), ("b", 5), ("c", 0), ("d", 9), ("e", 5), ("f", -1)]:
        await broker.publish(name, priority=prio)
    got = await broker.receive(["c"] * 6)
    assert [d.body for d in got] == ["d", "b", "e", "a", "c", "f"]
    assert [d.priority for d in got] == [9, 5, 5, 0, 0, -1]


async def test_retried_message_keeps_its_place_and_priority(memory_broker: Make) -> None:
    """A nacked message goes back ahead of newer messages of its priority, still at it."""
    broker = memory_broker()
    await broker.publish("low", priority=0)
    await broker.publish("old", priority=2)
    await broker.publish("mid", priority=2)
    d = await lease(broker)
    assert d.body == "old"
    await broker.publish("new", priority=2)
    await broker.nack(d.receipt, delay=0)
    got = await broker.receive(["c"] * 4)
    assert [(x.body, x.priority) for x in got] == [
        ("old", 2),
        ("mid", 2),
        ("new", 2),
        ("low", 0),
    ]


# -- redrive and purge ------------------------------------------------------------


async def _bury(broker: MemoryBroker, n: int) -> list[str]:
    """Publish n messages and dead-letter them all (max_attempts=1)."""
    ids = [await broker.publish(i) for i in range(n)]
    for d in await broker.receive(["c"] * n):
        await broker.nack(d.receipt, "bad")
    assert broker.stats().dead == n
    return ids


async def test_redrive_all_resets_attempts(memory_broker: Make) -> None:
    """Redrive with no ids puts every dead message back, as first attempts."""
    broker = memory_broker(max_attempts=1)
    ids = await _bury(broker, 3)
    assert await broker.redrive() == 3
    stats = broker.stats()
    assert (stats.dead, stats.ready) == (0, 3)
    got = await broker.receive(["c"] * 3)
    assert sorted(d.message_id for d in got) == sorted(ids)
    assert [d.attempt for d in got] == [1, 1, 1]


async def test_redrive_by_id_moves_only_those(memory_broker: Make) -> None:
    """Redrive with ids moves just those messages; unknown ids are ignored."""
    broker = memory_broker(max_attempts=1)
    ids = await _bury(broker, 3)
    assert await broker.redrive([ids[1], "no-such-id"]) == 1
    assert {d.message_id for d in broker.dead_letters()} == {ids[0], ids[2]}
    d = await lease(broker)
    assert (d.message_id, d.attempt) == (ids[1], 1)


async def test_purge_deletes_dead_letters(memory_broker: Make) -> None:
    """Purge by id removes those dead letters; purge with no ids removes the rest."""
    broker = memory_broker(max_attempts=1)
    ids = await _bury(broker, 3)
    assert await broker.purge([ids[0]]) == 1
    assert {d.message_id for d in broker.dead_letters()} == {ids[1], ids[2]}
    assert await broker.purge() == 2
    assert broker.dead_letters() == []
    assert await broker.redrive() == 0


async def test_dead_letters_newest_first(memory_broker: Make) -> None:
    """The DLQ view lists the most recently dead-lettered message first, up to `limit`."""
    broker = memory_broker(max_attempts=1)
    ids = await _bury(broker, 3)
    assert [d.message_id for d in broker.dead_letters()] == ids[::-1]
    assert [d.message_id for d in broker.dead_letters(limit=1)] == [ids[2]]


# -- dedup ------------------------------------------------------------------------


async def test_duplicate_within_window_is_a_no_op(memory_broker: Make) -> None:
    """A second publish with the same dedup_id returns the first id and adds nothing."""
    broker = memory_broker(dedup_window=60)
    first = await broker.publish(b"one", dedup_id="k")
    assert await broker.publish(b"two", dedup_id="k") == first
    assert broker.publish_nowait(b"three", dedup_id="k") == first
    stats = broker.stats()
    assert (stats.published, stats.ready) == (1, 1)
    assert [d.body for d in await broker.receive(["c", "c"])] == [b"one"]


async def test_duplicate_after_ack_is_still_suppressed(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """The window counts from publish, not from the message still being queued."""
    broker = memory_broker(dedup_window=60)
    first = await broker.publish(b"one", dedup_id="k")
    await broker.ack((await lease(broker)).receipt)
    await fake_clock.advance(59)
    assert await broker.publish(b"two", dedup_id="k") == first
    assert broker.stats().ready == 0


async def test_same_dedup_id_after_window_is_a_new_message(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """Once the dedup window has passed, the same dedup_id publishes a new message."""
    broker = memory_broker(dedup_window=60)
    first = await broker.publish(b"one", dedup_id="k")
    await fake_clock.advance(60)
    second = await broker.publish(b"two", dedup_id="k")
    assert second != first
    assert broker.stats().published == 2
    assert await broker.publish(b"three", dedup_id="k") == second


# -- capacity and backpressure ------------------------------------------------


async def test_publish_nowait_raises_when_full(memory_broker: Make) -> None:
    """A bounded queue refuses publish_nowait at capacity, counting leased messages too."""
    broker = memory_broker(capacity=2)
    await broker.publish(b"a")
    await broker.publish(b"b")
    await lease(broker)
    with pytest.raises(QueueFull):
        broker.publish_nowait(b"c")
    stats = broker.stats()
    assert (stats.published, stats.ready, stats.in_flight) == (2, 1, 1)


async def test_publish_waits_for_room_and_never_drops(memory_broker: Make) -> None:
    """A publisher on a full queue parks until an ack frees room, then publishes."""
    broker = memory_broker(capacity=1)
    await broker.publish(b"first")
    d = await lease(broker)
    task = asyncio.create_task(broker.publish(b"second"))
    await settle()
    assert not task.done()
    assert broker.stats().published == 1
    await broker.ack(d.receipt)
    mid = await task
    assert [(x.message_id, x.body) for x in await broker.receive(["c"])] == [(mid, b"second")]


async def test_parked_publishers_are_admitted_one_per_free_slot(memory_broker: Make) -> None:
    """Each freed slot admits one waiting publisher; none is lost or overtaken."""
    broker = memory_broker(capacity=1)
    await broker.publish(0)
    tasks = [asyncio.create_task(broker.publish(i)) for i in range(1, 4)]
    await settle()
    for expected in range(4):
        d = await lease(broker)
        assert d.body == expected
        assert sum(t.done() for t in tasks) == expected
        await broker.ack(d.receipt)
        await settle()
    assert all(t.done() for t in tasks)
    assert broker.stats().published == 4


async def test_cancelled_waiting_publisher_passes_its_wakeup_on(memory_broker: Make) -> None:
    """A publisher cancelled just after being woken does not strand the next one."""
    broker = memory_broker(capacity=1)
    await broker.publish(b"a")
    d = await lease(broker)
    first = asyncio.create_task(broker.publish(b"b"))
    second = asyncio.create_task(broker.publish(b"c"))
    await settle()
    await broker.ack(d.receipt)  # wakes `first`...
    first.cancel()  # ...which is cancelled before it can use the room
    await settle()
    assert first.cancelled()
    assert second.done()
    assert [x.body for x in await broker.receive(["c"])] == [b"c"]


async def test_duplicate_publish_does_not_wait_when_full(memory_broker: Make) -> None:
    """A publish the dedup window would drop anyway returns at once on a full queue."""
    broker = memory_broker(capacity=1)
    mid = await broker.publish(b"a", dedup_id="k")
    assert await asyncio.wait_for(broker.publish(b"a", dedup_id="k"), 1) == mid


async def test_closed_broker_fails_parked_publishers(memory_broker: Make) -> None:
    """close() wakes a publisher waiting for room with BrokerClosed."""
    broker = memory_broker(capacity=1)
    await broker.publish(b"a")
    task = asyncio.create_task(broker.publish(b"b"))
    await settle()
    await broker.close()
    with pytest.raises(BrokerClosed):
        await task
    with pytest.raises(BrokerClosed):
        broker.publish_nowait(b"c")


# -- wait_ready -----------------------------------------------------------------


async def test_wait_ready_returns_at_once_when_ready(memory_broker: Make) -> None:
    """wait_ready does not park when a message is already ready."""
    broker = memory_broker()
    await broker.publish(b"x")
    await asyncio.wait_for(broker.wait_ready(), 1)


async def test_wait_ready_is_woken_by_publish(memory_broker: Make) -> None:
    """A consumer parked in wait_ready wakes when a message is published."""
    broker = memory_broker()
    task = asyncio.create_task(broker.wait_ready())
    await settle()
    assert not task.done()
    await broker.publish(b"x")
    await settle()
    assert task.done()


async def test_wait_ready_is_woken_by_a_retry_coming_due(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """A parked consumer wakes when a delayed retry becomes visible, with no polling."""
    broker = memory_broker()
    await broker.publish(b"x")
    await broker.nack((await lease(broker)).receipt, delay=5.0)
    task = asyncio.create_task(broker.wait_ready())
    await fake_clock.advance(4.99)
    assert not task.done()
    await fake_clock.advance(0.01)
    assert task.done()
    assert broker.ready_count() == 1


async def test_wait_ready_is_woken_by_a_lease_expiring(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """A parked consumer wakes when another's lease runs out."""
    broker = memory_broker(visibility_timeout=3)
    await broker.publish(b"x")
    await lease(broker)
    task = asyncio.create_task(broker.wait_ready())
    await fake_clock.advance(2.99)
    assert not task.done()
    await fake_clock.advance(0.01)
    assert task.done()


# -- bodies ---------------------------------------------------------------------


async def test_bytes_body_comes_back_as_bytes(memory_broker: Make) -> None:
    """Bytes (and bytearray) payloads are delivered as the same bytes."""
    broker = memory_broker()
    await broker.publish(b"\x00\xffraw")
    await broker.publish(bytearray(b"ba"))
    got = [d.body for d in await broker.receive(["c", "c"])]
    assert got == [b"\x00\xffraw", b"ba"]
    assert all(type(b) is bytes for b in got)


async def test_json_body_comes_back_as_json(memory_broker: Make) -> None:
    """A dict payload is delivered as an equal dict, a fresh copy."""
    broker = memory_broker()
    body = {"order": 7, "items": ["a", "b"], "ok": True, "note": None}
    await broker.publish(body)
    d = await lease(broker)
    assert d.body == body
    assert d.body is not body


async def test_non_json_body_is_refused(memory_broker: Make) -> None:
    """A payload that is neither bytes nor JSON raises TypeError and is not queued."""
    broker = memory_broker()
    for bad in (object(), {"x": {1, 2}}, float("nan")):
        with pytest.raises(TypeError):
            await broker.publish(bad)
    assert broker.stats().published == 0


# -- views ----------------------------------------------------------------------


async def test_views_reflect_expired_leases(memory_broker: Make, fake_clock: FakeClock) -> None:
    """leases(), holder_counts() and dead_letters() never show a lease past its deadline."""
    broker = memory_broker(visibility_timeout=5, max_attempts=1)
    await broker.publish(b"x")
    await lease(broker, "gone")
    fake_clock._now += 5  # no reap has run since
    assert broker.leases() == []
    assert broker.holder_counts() == {}
    assert [d.reason for d in broker.dead_letters()] == [REASON_EXPIRED]


async def test_leases_soonest_deadline_first(memory_broker: Make, fake_clock: FakeClock) -> None:
    """leases() lists live leases by deadline, at most `limit`."""
    broker = memory_broker(visibility_timeout=10)
    for i in range(3):
        await broker.publish(i)
    a = await lease(broker, "a")
    await fake_clock.advance(1)
    await lease(broker, "b")
    await broker.extend(a.receipt, 20)
    await lease(broker, "c")
    assert [x.consumer_id for x in broker.leases()] == ["b", "c", "a"]
    assert [x.consumer_id for x in broker.leases(limit=2)] == ["b", "c"]


# -- DeadlineBuckets --------------------------------------------------------------


class Item:
    """A deadline holder that counts how often its deadline is read."""

    reads = 0

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    @property
    def deadline(self) -> float:
        Item.reads += 1
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        self._deadline = value


def test_buckets_pop_expired_returns_only_expired() -> None:
    """pop_expired returns exactly the items due at `now` and keeps the rest."""
    buckets: DeadlineBuckets[Item] = DeadlineBuckets(resolution=0.05)
    deadlines = [10.0 + i * 0.013 for i in range(200)]
    for i, d in enumerate(deadlines):
        buckets.add(i, Item(d))
    now = 10.0 + 57 * 0.013
    got = buckets.pop_expired(now)
    assert sorted(x.deadline for x in got) == [d for d in deadlines if d <= now]
    assert len(got) == 58
    assert len(buckets) == 142
    assert buckets.pop_expired(now) == []


def test_buckets_pop_expired_work_grows_with_k_not_n() -> None:
    """Popping k of n items reads O(k) deadlines, however many items are held."""
    buckets: DeadlineBuckets[Item] = DeadlineBuckets(resolution=0.05)
    for i in range(100_000):
        buckets.add(i, Item(100.0 + i * 0.001))  # 50 per bucket, as leases arrive
    Item.reads = 0
    got = buckets.pop_expired(100.0 + 9 * 0.001)
    assert len(got) == 10
    assert Item.reads < 100  # a scan of all items would read 100,000
    Item.reads = 0
    assert len(buckets.pop_expired(100.0 + 1009 * 0.001)) == 1000
    assert Item.reads < 1200


def test_buckets_out_of_order_deadlines_in_one_bucket() -> None:
    """An item added after a later one in the same bucket still pops when it is due."""
    buckets: DeadlineBuckets[Item] = DeadlineBuckets(resolution=1.0)
    buckets.add("late", Item(5.9))
    buckets.add("early", Item(5.1))
    assert buckets.next_deadline() == 5.1
    assert [x.deadline for x in buckets.pop_expired(5.5)] == [5.1]
    assert buckets.next_deadline() == 5.9
    assert len(buckets) == 1


def test_buckets_remove() -> None:
    """A removed item is returned once, then never popped; unknown keys give None."""
    buckets: DeadlineBuckets[Item] = DeadlineBuckets(resolution=0.05)
    a, b = Item(1.0), Item(1.01)
    buckets.add("a", a)
    buckets.add("b", b)
    assert buckets.remove("a", 1.0) is a
    assert buckets.remove("a", 1.0) is None
    assert buckets.remove("zzz", 7.0) is None
    assert len(buckets) == 1
    assert buckets.pop_expired(2.0) == [b]
    assert len(buckets) == 0


def test_buckets_next_deadline() -> None:
    """next_deadline is the earliest tracked deadline, skipping emptied buckets; None if empty."""
    buckets: DeadlineBuckets[Item] = DeadlineBuckets(resolution=0.05)
    assert buckets.next_deadline() is None
    buckets.add("b", Item(3.0))
    buckets.add("a", Item(1.0))
    assert buckets.next_deadline() == 1.0
    buckets.remove("a", 1.0)
    assert buckets.next_deadline() == 3.0
    buckets.pop_expired(3.0)
    assert buckets.next_deadline() is None


def test_buckets_pop_an_item_exactly_at_its_deadline() -> None:
    """Near bucket edges in floating point, an item pops at now == deadline, never before."""
    # e.g. floor(1755.55 / 0.05) * 0.05 > 1755.55: the slot's start lies after the item
    deadlines = [1755.55, 0.15, 0.7, 1.0 / 3.0, 1005.0, 2.45]
    for d in deadlines:
        buckets: DeadlineBuckets[Item] = DeadlineBuckets(resolution=0.05)
        buckets.add("k", Item(d))
        assert buckets.pop_expired(d - 1e-9) == []
        assert [x.deadline for x in buckets.pop_expired(d)] == [d]


async def test_full_queue_counts_a_lease_expired_into_the_dlq_as_room(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """A last-attempt lease that ran out frees its slot, with or without a reap since."""
    broker = memory_broker(capacity=1, max_attempts=1, visibility_timeout=5)
    await broker.publish(b"a")
    await lease(broker)
    fake_clock._now += 5  # no reap has run since
    broker.publish_nowait(b"b")
    assert broker.stats().dead == 1


async def test_parked_publisher_admitted_when_a_lease_expires_into_the_dlq(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """A publisher waiting on a full queue wakes when an expiry frees room, with no consumer."""
    broker = memory_broker(capacity=1, max_attempts=1, visibility_timeout=5)
    await broker.publish(b"a")
    await lease(broker)
    task = asyncio.create_task(broker.publish(b"b"))
    await fake_clock.advance(4.99)
    assert not task.done()
    await fake_clock.advance(0.01)
    assert task.done()
    assert (await lease(broker)).body == b"b"


async def test_redrive_includes_a_lease_that_just_expired_on_its_last_attempt(
    memory_broker: Make, fake_clock: FakeClock
) -> None:
    """Redrive sees the DLQ as of now, not as of the last reap."""
    broker = memory_broker(max_attempts=1, visibility_timeout=5)
    await broker.publish(b"a")
    await lease(broker)
    fake_clock._now += 5  # no reap has run since
    assert await broker.redrive() == 1
    assert (await lease(broker)).attempt == 1


async def test_retired_holders_do_not_accumulate(memory_broker: Make) -> None:
    """Holders that come, take a message, ack it and go leave no lasting trace."""
    broker = memory_broker()
    for i in range(1000):
        await broker.publish(i)
        await broker.ack((await lease(broker, f"consumer-{i}")).receipt)
    assert len(broker._by_holder) <= 64  # emptied holder indexes are dropped as they pile up
    assert broker.holder_counts() == {}
