"""What only the memory broker has: its deadline index and its holder bookkeeping.

The queue contract itself is in tests/test_broker_contract.py (all three brokers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ccdash.brokers.codec import KEPT_FLAT
from ccdash.brokers.deadlines import DeadlineBuckets
from ccdash.brokers.memory import MemoryBroker
from ccdash.brokers.memory.records import PUBLISHED_FIELDS, Msg, attempts, failures
from ccdash.brokers.types import Delivery, QueueConfig

Make = Callable[..., MemoryBroker]


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


async def test_retired_holders_do_not_accumulate(memory_broker: Make) -> None:
    """Holders that come, take a message, ack it and go leave no lasting trace."""
    broker = memory_broker()
    for i in range(1000):
        await broker.publish(i)
        await broker.ack(((await broker.receive([f"consumer-{i}"]))[0]).receipt)
    assert len(broker._by_holder) <= 64  # emptied holder indexes are dropped as they pile up
    assert broker.holder_counts() == {}


async def test_records_built_field_by_field_have_every_field() -> None:
    """publish_nowait and receive_nowait build their Msg and Delivery field by field (a
    Python __init__ costs more): a published Msg has exactly the fields a ready message
    needs, and no placeholders; a lease adds attempt, deadline and holder (receipt only
    astray); the Delivery has every field."""
    broker = MemoryBroker()
    mid = broker.publish_nowait({"a": 1}, priority=2)
    [msg] = broker._levels[2].fresh

    def fields(m: Msg) -> dict[str, object]:
        return {s: getattr(m, s) for s in Msg.__slots__ if hasattr(m, s)}

    assert fields(msg) == {
        "id": mid,
        "data": {"a": 1},
        "how": KEPT_FLAT,
        "priority": 2,
        "seq": 1,
        "published_at": msg.published_at,
    }
    assert list(fields(msg)) == list(PUBLISHED_FIELDS)
    assert (attempts(msg), failures(msg)) == (0, None)
    [d] = broker.receive_nowait(["c"])
    assert list(fields(msg)) == [*PUBLISHED_FIELDS, "attempt", "deadline", "holder"]
    assert (msg.attempt, msg.deadline, msg.holder) == (1, d.deadline, "c")
    assert dataclasses.asdict(d) == dataclasses.asdict(
        Delivery(mid, {"a": 1}, 1, "c", d.receipt, 2, d.deadline, msg.published_at)
    )


async def test_a_batch_takes_fresh_and_returned_messages_in_order() -> None:
    """receive_nowait's two paths agree: a batch of fresh messages only (attempt 1 without
    a look) and a batch mixing a returned message, fresh ones and a lower level give
    priority then sequence order, the right attempts, and leave no emptied level."""
    broker = MemoryBroker()
    for name in ("a", "b", "c"):
        broker.publish_nowait(name, priority=1)
    broker.publish_nowait("low")
    [a] = broker.receive_nowait(["h"])
    assert (a.body, a.attempt) == ("a", 1)
    await broker.nack(a.receipt, "boom", delay=0)
    got = broker.receive_nowait(["h1", "h2", "h3", "h4"])
    assert [(d.body, d.attempt, d.priority, d.consumer_id) for d in got] == [
        ("a", 2, 1, "h1"),
        ("b", 1, 1, "h2"),
        ("c", 1, 1, "h3"),
        ("low", 1, 0, "h4"),
    ]
    assert broker._levels == {} and broker._order == []
    broker.publish_nowait("x")
    broker.publish_nowait("y")
    got = broker.receive_nowait(["h1", "h2"])  # the whole level, on the fresh path
    assert [(d.body, d.attempt) for d in got] == [("x", 1), ("y", 1)]
    assert broker._levels == {} and broker._order == []
    assert len({d.receipt for d in got}) == 2


async def test_acked_is_exact_without_a_count_per_ack() -> None:
    """`acked` is derived (published messages in no other place), so ack_nowait counts
    nothing; it stays exact through expiry, the DLQ, purge and redrive."""
    broker = MemoryBroker(QueueConfig(max_attempts=1, visibility_timeout=5.0))
    for i in range(6):
        broker.publish_nowait(i)
    got = broker.receive_nowait(["a"] * 4)
    broker.ack_nowait(got[0].receipt)
    broker.ack_nowait(got[1].receipt)
    await broker.nack(got[2].receipt, "boom")  # last attempt: dead
    assert (broker.stats().acked, broker.stats().dead) == (2, 1)
    await broker.purge()
    [dead] = broker.receive_nowait(["a"])
    await broker.nack(dead.receipt, "boom")
    await broker.redrive()
    assert (broker.stats().acked, broker.stats().dead, broker.outstanding()) == (2, 0, 3)
    for d in broker.receive_nowait(["a"] * 3):
        broker.ack_nowait(d.receipt)
    broker.ack_nowait(got[3].receipt)
    assert broker.stats().acked == 6 - 1 and broker.outstanding() == 0
    assert vars(broker).get("acked") is None  # a property, never a stored count
