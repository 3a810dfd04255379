"""Every broker against "Contract: queue semantics": each test runs on memory,
SQLite and Redis (the `brokers` harness, tests/support/broker_harness.py).

Tests marked `fake_clock_only` drive deadlines with the fake clock and run on
memory and SQLite; their Redis variants, on short real times, are in
tests/test_redis_broker.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.broker_harness import Brokers, fake_clock_only

from ccdash.brokers.base import (
    REASON_CONSUMER_FAILED,
    REASON_EXPIRED,
    REASON_FAILED,
    REASON_RELEASED,
    BrokerClosed,
    QueueConfig,
    QueueFull,
    ReceiptRejected,
)
from ccdash.clock import FakeClock

# -- leasing ----------------------------------------------------------------


@fake_clock_only
async def test_receive_sets_deadline_to_now_plus_visibility_timeout(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """A delivery's lease runs out one visibility timeout after the receive."""
    broker = await brokers.make(visibility_timeout=12.5)
    mid = await broker.publish(b"x")
    await fake_clock.advance(3.0)
    d = await brokers.lease(broker, "alice")
    assert (d.message_id, d.consumer_id, d.attempt) == (mid, "alice", 1)
    assert d.deadline == fake_clock.now() + 12.5
    assert (await brokers.stats(broker)).in_flight == 1


async def test_each_delivery_gets_a_fresh_receipt(brokers: Brokers) -> None:
    """Two messages, and two deliveries of one message, never share a receipt."""
    broker = await brokers.make()
    await broker.publish(b"a")
    await broker.publish(b"b")
    first, second = await brokers.receive(broker, ["c1", "c2"])
    await broker.nack(first.receipt, delay=0)
    again = await brokers.lease(broker)
    assert again.message_id == first.message_id
    assert len({first.receipt, second.receipt, again.receipt}) == 3


async def test_receive_gives_the_ith_message_to_the_ith_holder(brokers: Brokers) -> None:
    """Batch receive leases in queue order, one message per holder, as many as are ready."""
    broker = await brokers.make()
    ids = [await broker.publish(i) for i in range(2)]
    got = await brokers.receive(broker, ["a", "b", "c"])
    assert [(d.message_id, d.consumer_id) for d in got] == [(ids[0], "a"), (ids[1], "b")]
    assert await brokers.receive(broker, ["d"]) == []


async def test_attempt_increases_by_one_per_delivery(brokers: Brokers) -> None:
    """Every redelivery of a message carries the next attempt number."""
    broker = await brokers.make(max_attempts=5)
    await broker.publish(b"x")
    attempts = []
    for _ in range(3):
        d = await brokers.lease(broker)
        attempts.append(d.attempt)
        await broker.nack(d.receipt, delay=0)
    assert attempts == [1, 2, 3]
    # Redis counts a retry as redelivered when it is scheduled (see README, Redis).
    assert (await brokers.stats(broker)).redelivered == (2 if brokers.fake_time else 3)


# -- ack ----------------------------------------------------------------------


@fake_clock_only
async def test_ack_deletes_the_message(brokers: Brokers, fake_clock: FakeClock) -> None:
    """An acked message is gone for good: not ready, not leased, never redelivered."""
    broker = await brokers.make(visibility_timeout=5)
    await broker.publish(b"x")
    await broker.ack((await brokers.lease(broker)).receipt)
    await fake_clock.advance(60)
    stats = await brokers.stats(broker)
    assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (0, 0, 0, 0)
    assert stats.acked == 1
    assert await brokers.receive(broker, ["c"]) == []


async def test_ack_twice_is_rejected(brokers: Brokers) -> None:
    """A receipt is good for one ack only."""
    broker = await brokers.make()
    await broker.publish(b"x")
    d = await brokers.lease(broker)
    await broker.ack(d.receipt)
    with pytest.raises(ReceiptRejected):
        await broker.ack(d.receipt)
    assert (await brokers.stats(broker)).acked == 1


@fake_clock_only
async def test_ack_of_stale_receipt_is_rejected(brokers: Brokers, fake_clock: FakeClock) -> None:
    """After a lease expired and the message went to someone else, the old receipt fails."""
    broker = await brokers.make(visibility_timeout=5)
    await broker.publish(b"x")
    old = await brokers.lease(broker, "slow")
    await fake_clock.advance(5)
    new = await brokers.lease(broker, "fast")
    assert new.message_id == old.message_id
    with pytest.raises(ReceiptRejected):
        await broker.ack(old.receipt)
    await broker.ack(new.receipt)  # the new holder's lease was not disturbed
    assert (await brokers.stats(broker)).acked == 1


@fake_clock_only
async def test_ack_at_the_deadline_is_rejected_and_requeues(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """An ack arriving when the deadline has passed, before any reap, is too late."""
    broker = await brokers.make(visibility_timeout=5)
    await broker.publish(b"x")
    d = await brokers.lease(broker)
    fake_clock._now = d.deadline  # no timer, no reap in between
    with pytest.raises(ReceiptRejected):
        await broker.ack(d.receipt)
    stats = await brokers.stats(broker)
    assert (stats.ready, stats.in_flight, stats.acked) == (1, 0, 0)


async def test_ack_after_release_is_rejected(brokers: Brokers) -> None:
    """A released lease can no longer be acked."""
    broker = await brokers.make()
    await broker.publish(b"x")
    d = await brokers.lease(broker)
    assert await broker.release([d.receipt], REASON_RELEASED) == 1
    with pytest.raises(ReceiptRejected):
        await broker.ack(d.receipt)
    assert (await brokers.stats(broker)).ready == 1


async def test_ack_many_returns_only_rejected_receipts(brokers: Brokers) -> None:
    """ack_many acks the live receipts and hands back the dead ones."""
    broker = await brokers.make()
    await broker.publish(b"a")
    await broker.publish(b"b")
    a, b = await brokers.receive(broker, ["c", "c"])
    await broker.ack(a.receipt)
    assert await broker.ack_many([a.receipt, b.receipt]) == [a.receipt]
    assert (await brokers.stats(broker)).acked == 2


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


@fake_clock_only
async def test_nack_hides_the_message_for_its_backoff(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """A nacked message is delayed for exactly the drawn backoff, then ready again."""
    for seed in range(5):
        broker = await brokers.make(backoff_base=2.0, backoff_max=30.0, seed=seed)
        expected = QueueConfig(backoff_base=2.0, backoff_max=30.0, seed=seed).backoff(1)
        await broker.publish(b"x")
        start = fake_clock.now()
        assert await broker.nack((await brokers.lease(broker)).receipt, "boom") is False
        assert (await brokers.stats(broker)).delayed == 1
        fake_clock._now = start + expected * 0.999
        assert broker.ready_count() == 0
        assert await brokers.receive(broker, ["c"]) == []
        fake_clock._now = start + expected
        assert broker.ready_count() == 1
        await broker.ack((await brokers.lease(broker)).receipt)


@fake_clock_only
async def test_nacked_message_is_ready_once_the_cap_has_passed(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """Whatever the jitter draws, a retry is visible once the capped ceiling has passed."""
    broker = await brokers.make(backoff_base=1.0, backoff_max=3.0, max_attempts=10)
    await broker.publish(b"x")
    for attempt in range(1, 7):
        d = await brokers.lease(broker)
        assert d.attempt == attempt
        await broker.nack(d.receipt)
        await fake_clock.advance(min(3.0, 2.0 ** (attempt - 1)))
        assert broker.ready_count() == 1


@fake_clock_only
async def test_nack_with_explicit_delay(brokers: Brokers, fake_clock: FakeClock) -> None:
    """`delay=` overrides the backoff; zero makes the message ready at once."""
    broker = await brokers.make()
    await broker.publish(b"x")
    await broker.nack((await brokers.lease(broker)).receipt, delay=0)
    assert broker.ready_count() == 1
    await broker.nack((await brokers.lease(broker)).receipt, delay=7.0)
    await fake_clock.advance(6.9)
    assert broker.ready_count() == 0
    await fake_clock.advance(0.1)
    assert broker.ready_count() == 1


@fake_clock_only
async def test_delayed_retries_come_due_in_deadline_order(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """A short retry delay is not held back by a longer one nacked before it."""
    broker = await brokers.make()
    await broker.publish(b"long")
    await broker.publish(b"short")
    long, short = await brokers.receive(broker, ["a", "b"])
    await broker.nack(long.receipt, delay=0.04)
    await broker.nack(short.receipt, delay=0.01)
    await fake_clock.advance(0.02)
    assert [d.body for d in await brokers.receive(broker, ["c", "c"])] == [b"short"]


@fake_clock_only
async def test_defer_delays_without_using_an_attempt(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """A deferred message comes back after the delay as the same attempt, never dead-lettered."""
    broker = await brokers.make(max_attempts=1)
    await broker.publish(b"x")
    d = await brokers.lease(broker)
    await broker.defer(d.receipt, 2.0)
    with pytest.raises(ReceiptRejected):
        await broker.ack(d.receipt)
    await fake_clock.advance(1.99)
    assert broker.ready_count() == 0
    await fake_clock.advance(0.01)
    again = await brokers.lease(broker)
    assert (again.message_id, again.attempt) == (d.message_id, 1)
    assert (await brokers.stats(broker)).dead == 0


# -- expiry -----------------------------------------------------------------------


@fake_clock_only
async def test_expired_lease_is_visible_again_at_once(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """When a lease runs out the message is ready immediately, as the next attempt."""
    broker = await brokers.make(visibility_timeout=5)
    await broker.publish(b"x")
    first = await brokers.lease(broker, "a")
    await fake_clock.advance(4.99)
    assert (await brokers.stats(broker)).in_flight == 1
    await fake_clock.advance(0.01)
    stats = await brokers.stats(broker)
    assert (stats.ready, stats.delayed, stats.in_flight) == (1, 0, 0)
    again = await brokers.lease(broker, "b")
    assert (again.message_id, again.attempt) == (first.message_id, 2)


@fake_clock_only
async def test_no_operation_judges_a_lease_expired_while_the_process_is_stalled(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """While the stall guard holds judging back (the loop was blocked past a lease),
    nothing the process does next - publishing, publishing without waiting, receiving -
    takes the lease away: its holder still acks it. (SQLite's publish reaped as of the
    clock, so a publisher catching up after a stall cost its neighbours an attempt.)"""
    broker = await brokers.make(visibility_timeout=2)
    await broker.publish(b"held")
    d = await brokers.lease(broker, "a")
    vouched = fake_clock.now() + 0.75
    broker.stall_guard = lambda: vouched
    await fake_clock.advance(2.5)  # the lease ran out while nothing could run
    await broker.publish(b"after the stall")
    broker.publish_nowait(b"and another")
    await broker.flush()
    got = await brokers.receive(broker, ["b", "c", "d"])
    assert [m.attempt for m in got] == [1, 1]
    # Leased after the stall: a whole visibility timeout from now, not from the held time.
    assert {m.deadline for m in got} == {fake_clock.now() + 2}
    await broker.ack(d.receipt)
    broker.stall_guard = None
    assert (await brokers.stats(broker)).in_flight == 2


@fake_clock_only
async def test_expired_lease_cannot_be_nacked_or_extended(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """Once its deadline passed, a receipt is rejected by nack and extend as well."""
    broker = await brokers.make(visibility_timeout=5)
    await broker.publish(b"x")
    d = await brokers.lease(broker)
    await fake_clock.advance(5)
    with pytest.raises(ReceiptRejected):
        await broker.nack(d.receipt)
    with pytest.raises(ReceiptRejected):
        await broker.extend(d.receipt, 10)
    assert (await brokers.stats(broker)).ready == 1


@fake_clock_only
async def test_extended_lease_expires_in_deadline_order(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """A lease extended to a deadline before a newer lease's still expires on time."""
    broker = await brokers.make(visibility_timeout=30)
    await broker.publish(b"a")
    await broker.publish(b"b")
    a = await brokers.lease(broker, "a")
    await fake_clock.advance(0.02)
    b = await brokers.lease(broker, "b")
    assert await broker.extend(a.receipt, 29.99) < b.deadline
    await fake_clock.advance(29.995)
    assert broker.holder_counts() == {"b": 1}
    with pytest.raises(ReceiptRejected):
        await broker.nack(a.receipt)


@fake_clock_only
async def test_lowered_visibility_timeout_applies_to_new_leases(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """After the timeout is lowered, new leases expire on their own sooner deadline."""
    broker = await brokers.make(visibility_timeout=30)
    await broker.publish(b"old")
    await broker.publish(b"new")
    await brokers.lease(broker, "a")
    broker.config.visibility_timeout = 5
    b = await brokers.lease(broker, "b")
    assert b.deadline == fake_clock.now() + 5
    await fake_clock.advance(5)
    assert broker.holder_counts() == {"a": 1}
    assert (await brokers.stats(broker)).ready == 1


@fake_clock_only
async def test_long_extend_does_not_delay_newer_leases(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """A lease extended far past the timeout leaves newer leases expiring on time."""
    broker = await brokers.make(visibility_timeout=10)
    await broker.publish(b"long")
    await broker.publish(b"short")
    a = await brokers.lease(broker, "a")
    await broker.extend(a.receipt, 100)
    await brokers.lease(broker, "b")
    await fake_clock.advance(10)
    assert broker.holder_counts() == {"a": 1}
    await fake_clock.advance(89.99)
    assert broker.holder_counts() == {"a": 1}
    await fake_clock.advance(0.01)
    assert broker.holder_counts() == {}
    assert [x.deadline for x in broker.leases()] == []


# -- dead letters -----------------------------------------------------------------


async def test_nack_at_max_attempts_dead_letters_as_failed(brokers: Brokers) -> None:
    """The last allowed failure sends the message to the DLQ with reason and error."""
    broker = await brokers.make(max_attempts=2)
    mid = await broker.publish({"n": 1}, priority=3)
    assert await broker.nack((await brokers.lease(broker)).receipt, "first", delay=0) is False
    assert await broker.nack((await brokers.lease(broker)).receipt, "second") is True
    [dead] = await brokers.dead_letters(broker)
    assert (dead.message_id, dead.reason, dead.attempts) == (mid, REASON_FAILED, 2)
    assert (dead.last_error, dead.priority, dead.body) == ("second", 3, {"n": 1})
    assert [(h.attempt, h.outcome, h.error) for h in dead.history] == [
        (1, REASON_FAILED, "first"),
        (2, REASON_FAILED, "second"),
    ]
    stats = await brokers.stats(broker)
    assert (stats.dead, stats.dead_lettered, stats.ready, stats.delayed) == (1, 1, 0, 0)


@fake_clock_only
async def test_expiry_at_max_attempts_dead_letters_as_lease_expired(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """A message whose every lease ran out is dead-lettered as lease-expired."""
    broker = await brokers.make(max_attempts=2, visibility_timeout=5)
    await broker.publish(b"x")
    for _ in range(2):
        await brokers.lease(broker)
        await fake_clock.advance(5)
    [dead] = await brokers.dead_letters(broker)
    assert (dead.reason, dead.attempts) == (REASON_EXPIRED, 2)
    assert dead.last_error
    assert (await brokers.stats(broker)).ready == 0


async def test_consumer_failure_counts_as_an_attempt(brokers: Brokers) -> None:
    """A lease released because its consumer died is redelivered as the next attempt."""
    broker = await brokers.make(max_attempts=3)
    await broker.publish(b"x")
    await brokers.lease(broker, "dies")
    assert await broker.release_holder("dies", REASON_CONSUMER_FAILED, "killed") == 1
    assert (await brokers.lease(broker)).attempt == 2


async def test_poison_message_dead_letters_as_consumer_failed(brokers: Brokers) -> None:
    """A message that keeps killing its consumers ends in the DLQ as consumer-failed."""
    broker = await brokers.make(max_attempts=2)
    await broker.publish(b"poison")
    for holder in ("c1", "c2"):
        await brokers.lease(broker, holder)
        await broker.release_holder(holder, REASON_CONSUMER_FAILED, f"{holder} crashed")
    [dead] = await brokers.dead_letters(broker)
    assert (dead.reason, dead.attempts, dead.last_error) == (
        REASON_CONSUMER_FAILED,
        2,
        "c2 crashed",
    )
    # A fleet broker names the holder with its worker: "worker:c1".
    assert [h.consumer_id.rsplit(":", 1)[-1] for h in dead.history] == ["c1", "c2"]


async def test_release_does_not_use_up_an_attempt(brokers: Brokers) -> None:
    """A lease handed back unprocessed is redelivered as the same attempt, never dead-lettered."""
    broker = await brokers.make(max_attempts=1)
    await broker.publish(b"x")
    for _ in range(3):
        d = await brokers.lease(broker)
        assert d.attempt == 1
        assert await broker.release([d.receipt], REASON_RELEASED) == 1
    stats = await brokers.stats(broker)
    assert (stats.ready, stats.dead, stats.redelivered) == (1, 0, 0)


async def test_release_counts_only_live_leases(brokers: Brokers) -> None:
    """release returns how many receipts still held a lease."""
    broker = await brokers.make()
    await broker.publish(b"a")
    await broker.publish(b"b")
    a, b = await brokers.receive(broker, ["c", "c"])
    await broker.ack(a.receipt)
    assert await broker.release([a.receipt, b.receipt, 999_999], REASON_RELEASED) == 1


async def test_release_holder_releases_only_that_holders_leases(brokers: Brokers) -> None:
    """Other holders keep their leases when one holder's are released."""
    broker = await brokers.make()
    for i in range(5):
        await broker.publish(i)
    got = await brokers.receive(broker, ["x", "y", "x", "y", "x"])
    assert await broker.release_holder("x", REASON_RELEASED) == 3
    assert broker.holder_counts() == {"y": 2}
    assert {lease.consumer_id for lease in broker.leases()} == {"y"}
    for d in got:
        if d.consumer_id == "y":
            await broker.ack(d.receipt)
    assert (await brokers.stats(broker)).ready == 3
    assert await broker.release_holder("nobody", REASON_RELEASED) == 0


# -- extend -----------------------------------------------------------------------


@fake_clock_only
async def test_extend_pushes_the_deadline(brokers: Brokers, fake_clock: FakeClock) -> None:
    """An extended lease survives its original deadline and expires after the new one."""
    broker = await brokers.make(visibility_timeout=5)
    await broker.publish(b"x")
    d = await brokers.lease(broker)
    await fake_clock.advance(4)
    assert await broker.extend(d.receipt, 10) == fake_clock.now() + 10
    await fake_clock.advance(9.99)
    assert (await brokers.stats(broker)).in_flight == 1
    assert broker.leases()[0].deadline == d.deadline + 9
    await fake_clock.advance(0.01)
    assert (await brokers.stats(broker)).in_flight == 0
    with pytest.raises(ReceiptRejected):
        await broker.ack(d.receipt)


@fake_clock_only
async def test_extended_lease_can_still_be_acked(brokers: Brokers, fake_clock: FakeClock) -> None:
    """Extending keeps the receipt: the holder acks with the one it has."""
    broker = await brokers.make(visibility_timeout=5)
    await broker.publish(b"x")
    d = await brokers.lease(broker)
    await broker.extend(d.receipt, 20)
    await fake_clock.advance(15)
    await broker.ack(d.receipt)
    assert (await brokers.stats(broker)).acked == 1


# -- ordering ---------------------------------------------------------------------


async def test_higher_priority_first_then_fifo(brokers: Brokers) -> None:
    """Delivery order is by priority, highest first, then by publish order."""
    broker = await brokers.make()
    for name, prio in [("a", 0), ("b", 5), ("c", 0), ("d", 9), ("e", 5), ("f", -1)]:
        await broker.publish(name, priority=prio)
    got = await brokers.receive(broker, ["c"] * 6)
    assert [d.body for d in got] == ["d", "b", "e", "a", "c", "f"]
    assert [d.priority for d in got] == [9, 5, 5, 0, 0, -1]


async def test_retried_message_keeps_its_place_and_priority(brokers: Brokers) -> None:
    """A nacked message goes back ahead of newer messages of its priority, still at it."""
    broker = await brokers.make()
    await broker.publish("low", priority=0)
    await broker.publish("old", priority=2)
    await broker.publish("mid", priority=2)
    d = await brokers.lease(broker)
    assert d.body == "old"
    await broker.publish("new", priority=2)
    await broker.nack(d.receipt, delay=0)
    got = await brokers.receive(broker, ["c"] * 4)
    assert [(x.body, x.priority) for x in got] == [("old", 2), ("mid", 2), ("new", 2), ("low", 0)]


# -- redrive and purge ------------------------------------------------------------


async def _bury(brokers: Brokers, broker: Any, n: int) -> list[str]:
    """Publish n messages and dead-letter them all (max_attempts=1)."""
    ids = [await broker.publish(i) for i in range(n)]
    for d in await brokers.receive(broker, ["c"] * n):
        await broker.nack(d.receipt, "bad")
    assert (await brokers.stats(broker)).dead == n
    return ids


async def test_redrive_all_resets_attempts(brokers: Brokers) -> None:
    """Redrive with no ids puts every dead message back, as first attempts."""
    broker = await brokers.make(max_attempts=1)
    ids = await _bury(brokers, broker, 3)
    assert await broker.redrive() == 3
    stats = await brokers.stats(broker)
    assert (stats.dead, stats.ready) == (0, 3)
    got = await brokers.receive(broker, ["c"] * 3)
    assert sorted(d.message_id for d in got) == sorted(ids)
    assert [d.attempt for d in got] == [1, 1, 1]


async def test_redrive_by_id_moves_only_those(brokers: Brokers) -> None:
    """Redrive with ids moves just those messages; unknown ids are ignored."""
    broker = await brokers.make(max_attempts=1)
    ids = await _bury(brokers, broker, 3)
    assert await broker.redrive([ids[1], "no-such-id"]) == 1
    assert {d.message_id for d in (await brokers.dead_letters(broker))} == {ids[0], ids[2]}
    d = await brokers.lease(broker)
    assert (d.message_id, d.attempt) == (ids[1], 1)


async def test_purge_deletes_dead_letters(brokers: Brokers) -> None:
    """Purge by id removes those dead letters; purge with no ids removes the rest."""
    broker = await brokers.make(max_attempts=1)
    ids = await _bury(brokers, broker, 3)
    assert await broker.purge([ids[0]]) == 1
    assert {d.message_id for d in (await brokers.dead_letters(broker))} == {ids[1], ids[2]}
    assert await broker.purge() == 2
    assert (await brokers.dead_letters(broker)) == []
    assert await broker.redrive() == 0


async def test_dead_letters_newest_first(brokers: Brokers) -> None:
    """The DLQ view lists the most recently dead-lettered message first, up to `limit`."""
    broker = await brokers.make(max_attempts=1)
    ids = await _bury(brokers, broker, 3)
    assert [d.message_id for d in (await brokers.dead_letters(broker))] == ids[::-1]
    assert [d.message_id for d in (await brokers.dead_letters(broker, limit=1))] == [ids[2]]


# -- dedup ------------------------------------------------------------------------


async def test_duplicate_within_window_is_a_no_op(brokers: Brokers) -> None:
    """A second publish with the same dedup_id returns the first id and adds nothing."""
    broker = await brokers.make(dedup_window=60)
    first = await broker.publish(b"one", dedup_id="k")
    assert await broker.publish(b"two", dedup_id="k") == first
    assert broker.publish_nowait(b"three", dedup_id="k") == first
    stats = await brokers.stats(broker)
    assert (stats.published, stats.ready) == (1, 1)
    assert [d.body for d in await brokers.receive(broker, ["c", "c"])] == [b"one"]


@fake_clock_only
async def test_duplicate_after_ack_is_still_suppressed(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """The window counts from publish, not from the message still being queued."""
    broker = await brokers.make(dedup_window=60)
    first = await broker.publish(b"one", dedup_id="k")
    await broker.ack((await brokers.lease(broker)).receipt)
    await fake_clock.advance(59)
    assert await broker.publish(b"two", dedup_id="k") == first
    assert (await brokers.stats(broker)).ready == 0


@fake_clock_only
async def test_same_dedup_id_after_window_is_a_new_message(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """Once the dedup window has passed, the same dedup_id publishes a new message."""
    broker = await brokers.make(dedup_window=60)
    first = await broker.publish(b"one", dedup_id="k")
    await fake_clock.advance(60)
    second = await broker.publish(b"two", dedup_id="k")
    assert second != first
    assert (await brokers.stats(broker)).published == 2
    assert await broker.publish(b"three", dedup_id="k") == second


# -- capacity and backpressure ------------------------------------------------


async def test_publish_nowait_raises_when_full(brokers: Brokers) -> None:
    """A bounded queue refuses publish_nowait at capacity, counting leased messages too."""
    broker = await brokers.make(capacity=2)
    await broker.publish(b"a")
    await broker.publish(b"b")
    await brokers.lease(broker)
    with pytest.raises(QueueFull):
        broker.publish_nowait(b"c")
    stats = await brokers.stats(broker)
    assert (stats.published, stats.ready, stats.in_flight) == (2, 1, 1)


async def test_publish_waits_for_room_and_never_drops(brokers: Brokers) -> None:
    """A publisher on a full queue parks until an ack frees room, then publishes."""
    broker = await brokers.make(capacity=1)
    await broker.publish(b"first")
    d = await brokers.lease(broker)
    task = asyncio.create_task(broker.publish(b"second"))
    await brokers.settle()
    assert not task.done()
    assert (await brokers.stats(broker)).published == 1
    await broker.ack(d.receipt)
    mid = await task
    got = await brokers.receive(broker, ["c"])
    assert [(x.message_id, x.body) for x in got] == [(mid, b"second")]


@pytest.mark.brokers("memory", "sqlite")  # Redis admits by polling a fleet count: README
async def test_parked_publishers_are_admitted_one_per_free_slot(brokers: Brokers) -> None:
    """Each freed slot admits one waiting publisher; none is lost or overtaken."""
    broker = await brokers.make(capacity=1)
    await broker.publish(0)
    tasks = [asyncio.create_task(broker.publish(i)) for i in range(1, 4)]
    await brokers.settle()
    for expected in range(4):
        d = await brokers.lease(broker)
        assert d.body == expected
        assert sum(t.done() for t in tasks) == expected
        await broker.ack(d.receipt)
        await brokers.settle()
    assert all(t.done() for t in tasks)
    assert (await brokers.stats(broker)).published == 4


@pytest.mark.brokers("memory", "sqlite")  # Redis publishers re-check room by polling
async def test_cancelled_waiting_publisher_passes_its_wakeup_on(brokers: Brokers) -> None:
    """A publisher cancelled just after being woken does not strand the next one."""
    broker = await brokers.make(capacity=1)
    await broker.publish(b"a")
    d = await brokers.lease(broker)
    first = asyncio.create_task(broker.publish(b"b"))
    second = asyncio.create_task(broker.publish(b"c"))
    await brokers.settle()
    await broker.ack(d.receipt)  # wakes `first`...
    first.cancel()  # ...which is cancelled before it can use the room
    await brokers.settle()
    assert first.cancelled()
    assert second.done()
    assert [x.body for x in await brokers.receive(broker, ["c"])] == [b"c"]


async def test_duplicate_publish_does_not_wait_when_full(brokers: Brokers) -> None:
    """A publish the dedup window would drop anyway returns at once on a full queue."""
    broker = await brokers.make(capacity=1)
    mid = await broker.publish(b"a", dedup_id="k")
    assert await asyncio.wait_for(broker.publish(b"a", dedup_id="k"), 1) == mid


async def test_closed_broker_fails_parked_publishers(brokers: Brokers) -> None:
    """close() wakes a publisher waiting for room with BrokerClosed."""
    broker = await brokers.make(capacity=1)
    await broker.publish(b"a")
    task = asyncio.create_task(broker.publish(b"b"))
    await brokers.settle()
    await broker.close()
    with pytest.raises(BrokerClosed):
        await task
    with pytest.raises(BrokerClosed):
        broker.publish_nowait(b"c")


# -- wait_ready -----------------------------------------------------------------


async def test_wait_ready_returns_at_once_when_ready(brokers: Brokers) -> None:
    """wait_ready does not park when a message is already ready."""
    broker = await brokers.make()
    await broker.publish(b"x")
    await asyncio.wait_for(broker.wait_ready(), 1)


@pytest.mark.brokers("memory", "sqlite")  # Redis: test_redis_broker, another process
async def test_wait_ready_is_woken_by_publish(brokers: Brokers) -> None:
    """A consumer parked in wait_ready wakes when a message is published."""
    broker = await brokers.make()
    task = asyncio.create_task(broker.wait_ready())
    await brokers.settle()
    assert not task.done()
    await broker.publish(b"x")
    await brokers.settle()
    assert task.done()


@fake_clock_only
async def test_wait_ready_is_woken_by_a_retry_coming_due(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """A parked consumer wakes when a delayed retry becomes visible, with no polling."""
    broker = await brokers.make()
    await broker.publish(b"x")
    await broker.nack((await brokers.lease(broker)).receipt, delay=5.0)
    task = asyncio.create_task(broker.wait_ready())
    await fake_clock.advance(4.99)
    assert not task.done()
    await fake_clock.advance(0.01)
    assert task.done()
    assert broker.ready_count() == 1


@fake_clock_only
async def test_wait_ready_is_woken_by_a_lease_expiring(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """A parked consumer wakes when another's lease runs out."""
    broker = await brokers.make(visibility_timeout=3)
    await broker.publish(b"x")
    await brokers.lease(broker)
    task = asyncio.create_task(broker.wait_ready())
    await fake_clock.advance(2.99)
    assert not task.done()
    await fake_clock.advance(0.01)
    assert task.done()


# -- bodies ---------------------------------------------------------------------


async def test_bytes_body_comes_back_as_bytes(brokers: Brokers) -> None:
    """Bytes (and bytearray) payloads are delivered as the same bytes."""
    broker = await brokers.make()
    await broker.publish(b"\x00\xffraw")
    await broker.publish(bytearray(b"ba"))
    got = [d.body for d in await brokers.receive(broker, ["c", "c"])]
    assert got == [b"\x00\xffraw", b"ba"]
    assert all(type(b) is bytes for b in got)


async def test_json_body_comes_back_as_json(brokers: Brokers) -> None:
    """A dict payload is delivered as an equal dict, a fresh copy."""
    broker = await brokers.make()
    body = {"order": 7, "items": ["a", "b"], "ok": True, "note": None}
    await broker.publish(body)
    d = await brokers.lease(broker)
    assert d.body == body
    assert d.body is not body


async def test_non_json_body_is_refused(brokers: Brokers) -> None:
    """A payload that is neither bytes nor JSON raises TypeError and is not queued."""
    broker = await brokers.make()
    for bad in (object(), {"x": {1, 2}}, float("nan")):
        with pytest.raises(TypeError):
            await broker.publish(bad)
    assert (await brokers.stats(broker)).published == 0


# -- views ----------------------------------------------------------------------


@fake_clock_only
async def test_views_reflect_expired_leases(brokers: Brokers, fake_clock: FakeClock) -> None:
    """leases(), holder_counts() and dead_letters() never show a lease past its deadline."""
    broker = await brokers.make(visibility_timeout=5, max_attempts=1)
    await broker.publish(b"x")
    await brokers.lease(broker, "gone")
    fake_clock._now += 5  # no reap has run since
    assert broker.leases() == []
    assert broker.holder_counts() == {}
    assert [d.reason for d in (await brokers.dead_letters(broker))] == [REASON_EXPIRED]


@fake_clock_only
async def test_leases_soonest_deadline_first(brokers: Brokers, fake_clock: FakeClock) -> None:
    """leases() lists live leases by deadline, at most `limit`."""
    broker = await brokers.make(visibility_timeout=10)
    for i in range(3):
        await broker.publish(i)
    a = await brokers.lease(broker, "a")
    await fake_clock.advance(1)
    await brokers.lease(broker, "b")
    await broker.extend(a.receipt, 20)
    await brokers.lease(broker, "c")
    assert [x.consumer_id for x in broker.leases()] == ["b", "c", "a"]
    assert [x.consumer_id for x in broker.leases(limit=2)] == ["b", "c"]


@fake_clock_only
async def test_full_queue_counts_a_lease_expired_into_the_dlq_as_room(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """A last-attempt lease that ran out frees its slot, with or without a reap since."""
    broker = await brokers.make(capacity=1, max_attempts=1, visibility_timeout=5)
    await broker.publish(b"a")
    await brokers.lease(broker)
    fake_clock._now += 5  # no reap has run since
    broker.publish_nowait(b"b")
    assert (await brokers.stats(broker)).dead == 1


@fake_clock_only
async def test_parked_publisher_admitted_when_a_lease_expires_into_the_dlq(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """A publisher waiting on a full queue wakes when an expiry frees room, with no consumer."""
    broker = await brokers.make(capacity=1, max_attempts=1, visibility_timeout=5)
    await broker.publish(b"a")
    await brokers.lease(broker)
    task = asyncio.create_task(broker.publish(b"b"))
    await fake_clock.advance(4.99)
    assert not task.done()
    await fake_clock.advance(0.01)
    assert task.done()
    assert (await brokers.lease(broker)).body == b"b"


@fake_clock_only
async def test_redrive_includes_a_lease_that_just_expired_on_its_last_attempt(
    brokers: Brokers, fake_clock: FakeClock
) -> None:
    """Redrive sees the DLQ as of now, not as of the last reap."""
    broker = await brokers.make(max_attempts=1, visibility_timeout=5)
    await broker.publish(b"a")
    await brokers.lease(broker)
    fake_clock._now += 5  # no reap has run since
    assert await broker.redrive() == 1
    assert (await brokers.lease(broker)).attempt == 1
