"""A reference model of the queue contract and a Hypothesis state machine that
drives a broker and the model with the same random operations
(tests/test_broker_state_machine.py runs it on memory, tests/test_sqlite_broker.py
on SQLite).

The model is deliberately naive: a dict of messages, each with a `state`, reaped
eagerly before every operation. The broker reaps lazily and keeps indexes; after
every step both must agree on where each message is. The memory broker's coroutines
never suspend on these paths (publish goes through publish_nowait), so they are
stepped synchronously with `run`, without an event loop; a subclass on a broker
that does suspend overrides `run`.
"""

from __future__ import annotations

import math
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ccdash.brokers.base import (
    REASON_CONSUMER_FAILED,
    REASON_EXPIRED,
    REASON_FAILED,
    REASON_RELEASED,
    QueueConfig,
    QueueFull,
    QueueStats,
    Receipt,
    ReceiptRejected,
)
from ccdash.brokers.memory import MemoryBroker
from ccdash.clock import FakeClock

T = TypeVar("T")

VT = 10.0
MAX_ATTEMPTS = 3
CAPACITY = 8
DEDUP_WINDOW = 6.0
BACKOFF = {"backoff_base": 0.2, "backoff_max": 2.0}
HOLDERS = ("h1", "h2", "h3")
STATES = ("ready", "delayed", "leased", "dead", "acked")

# Time passing just before an operation, so the broker meets expired leases and
# due retries that nothing has reaped yet.
lag = st.sampled_from([0.0] * 6 + [0.01, 0.02, 0.5, 3.0, VT])
# Short delays and a near-VT extend put deadlines out of order within one 50 ms bucket.
retry_delay = st.sampled_from([None, None, 0.0, 0.01, 0.04, 0.3, 2.0])


@dataclass
class M:
    """The model's view of one message."""

    mid: str
    body: int
    priority: int
    order: int  # delivery order within a priority: publish or redrive order
    state: str = "ready"
    attempt: int = 0
    due: float = 0.0  # delayed: visible again at
    receipt: Receipt | None = None  # leased
    holder: str = ""
    deadline: float = 0.0
    reason: str = ""  # dead
    error: str = ""


class BrokerMachine(RuleBasedStateMachine):
    """Drive a MemoryBroker and a reference model with the same operations."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        config = dict(
            visibility_timeout=VT,
            max_attempts=MAX_ATTEMPTS,
            capacity=CAPACITY,
            dedup_window=DEDUP_WINDOW,
            seed=7,
            **BACKOFF,
        )
        self.broker = MemoryBroker(QueueConfig(**config), clock=self.clock)  # type: ignore[arg-type]
        self.twin = QueueConfig(**config)  # type: ignore[arg-type]  # same seed: same jitter
        self.msgs: dict[str, M] = {}
        self.dedup: dict[str, tuple[str, float]] = {}
        self.issued: set[Receipt] = set()
        self.order = 0
        self.bodies = 0
        self.totals = dict(published=0, acked=0, dead_lettered=0, redelivered=0)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Step a broker coroutine that must finish without suspending; its result."""
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        coro.close()
        raise AssertionError("broker coroutine suspended")

    # -- the model ----------------------------------------------------------

    @property
    def now(self) -> float:
        return self.clock.now()

    def wait(self, seconds: float) -> None:
        self.clock._now += seconds

    def in_state(self, state: str) -> list[M]:
        return [m for m in self.msgs.values() if m.state == state]

    def reap(self) -> None:
        """Due retries become ready; expired leases fail as lease-expired."""
        for m in self.msgs.values():
            if m.state == "delayed" and m.due <= self.now:
                m.state = "ready"
            elif m.state == "leased" and m.deadline <= self.now:
                self.fail(m, REASON_EXPIRED, None)

    def pick(self, data: st.DataObject) -> Receipt:
        """A receipt to use: mostly one the model holds as leased, else any ever issued."""
        self.reap()
        held = [m.receipt for m in self.in_state("leased") if m.receipt is not None]
        if held and data.draw(st.sampled_from([True, True, True, False]), label="held"):
            return data.draw(st.sampled_from(held), label="receipt")
        ever: list[Receipt] = sorted(self.issued, key=str)
        return data.draw(st.sampled_from(ever), label="receipt")

    def live(self, receipt: Receipt) -> M | None:
        self.reap()
        for m in self.in_state("leased"):
            if m.receipt == receipt:
                return m
        return None

    def check_counts(self, stats: QueueStats) -> None:
        """The broker's counts and totals are the model's."""
        counts = {s: len(self.in_state(s)) for s in STATES}
        assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (
            counts["ready"],
            counts["delayed"],
            counts["leased"],
            counts["dead"],
        )
        assert (stats.published, stats.acked, stats.dead_lettered, stats.redelivered) == (
            self.totals["published"],
            self.totals["acked"],
            self.totals["dead_lettered"],
            self.totals["redelivered"],
        )

    def end_lease(self, m: M) -> None:
        m.receipt, m.holder = None, ""

    def fail(self, m: M, reason: str, error: str | None) -> None:
        """A lease ended in failure: back to ready, or dead at max_attempts."""
        self.end_lease(m)
        if m.attempt >= MAX_ATTEMPTS:
            m.state, m.reason = "dead", reason
            if error is not None:
                m.error = error
            self.totals["dead_lettered"] += 1
        else:
            m.state = "ready"

    def next_order(self) -> int:
        self.order += 1
        return self.order

    # -- rules --------------------------------------------------------------

    @rule(priority=st.integers(0, 2), dedup_id=st.sampled_from([None, None, None, "a", "b"]))
    def publish(self, priority: int, dedup_id: str | None) -> None:
        self.reap()
        self.bodies += 1
        body = self.bodies
        known = self.dedup.get(dedup_id) if dedup_id is not None else None
        if known is not None and known[1] > self.now:
            again = self.broker.publish_nowait(body, priority=priority, dedup_id=dedup_id)
            assert again == known[0]
            return
        held = sum(m.state in ("ready", "delayed", "leased") for m in self.msgs.values())
        if held >= CAPACITY:
            try:
                self.broker.publish_nowait(body, priority=priority, dedup_id=dedup_id)
            except QueueFull:
                return
            raise AssertionError("publish_nowait accepted a message on a full queue")
        mid = self.broker.publish_nowait(body, priority=priority, dedup_id=dedup_id)
        assert mid not in self.msgs
        self.msgs[mid] = M(mid, body, priority, self.next_order())
        self.totals["published"] += 1
        if dedup_id is not None:
            self.dedup[dedup_id] = (mid, self.now + DEDUP_WINDOW)

    @rule(holders=st.lists(st.sampled_from(HOLDERS), min_size=1, max_size=3))
    def receive(self, holders: list[str]) -> None:
        self.reap()
        ready = sorted(self.in_state("ready"), key=lambda m: (-m.priority, m.order))
        expected = ready[: len(holders)]
        got = self.run(self.broker.receive(holders))
        assert [d.message_id for d in got] == [m.mid for m in expected]
        for d, m, holder in zip(got, expected, holders, strict=False):
            assert d.receipt not in self.issued, "receipt reused"
            self.issued.add(d.receipt)
            m.state, m.receipt, m.holder = "leased", d.receipt, holder
            m.attempt += 1
            m.deadline = self.now + self.broker.config.visibility_timeout
            if m.attempt > 1:
                self.totals["redelivered"] += 1
            assert (d.consumer_id, d.attempt, d.deadline, d.body, d.priority) == (
                holder,
                m.attempt,
                m.deadline,
                m.body,
                m.priority,
            )

    @precondition(lambda self: self.issued)
    @rule(data=st.data(), before=lag, at_deadline=st.sampled_from([False] * 4 + [True]))
    def ack(self, data: st.DataObject, before: float, at_deadline: bool) -> None:
        receipt = self.pick(data)
        self.wait(before)
        m = self.live(receipt)
        if m is not None and at_deadline:
            self.clock._now = m.deadline  # exactly when the lease runs out: too late
            m = self.live(receipt)
        if m is None:
            try:
                self.run(self.broker.ack(receipt))
            except ReceiptRejected:
                return
            raise AssertionError("ack of a dead receipt was accepted")
        self.run(self.broker.ack(receipt))
        self.end_lease(m)
        m.state = "acked"
        self.totals["acked"] += 1

    @precondition(lambda self: self.issued)
    @rule(data=st.data(), before=lag, delay=retry_delay, error=st.sampled_from(["boom", "timeout"]))
    def nack(self, data: st.DataObject, before: float, delay: float | None, error: str) -> None:
        receipt = self.pick(data)
        self.wait(before)
        self.nack_one(receipt, delay, error)

    @precondition(lambda self: any(m.state == "leased" for m in self.msgs.values()))
    @rule(delays=st.lists(retry_delay, min_size=1, max_size=4))
    def nack_every_lease(self, delays: list[float | None]) -> None:
        """A batch fails at once: many retries scheduled at the same instant."""
        self.reap()
        held = sorted((m.receipt for m in self.in_state("leased")), key=str)
        for i, receipt in enumerate(held):
            assert receipt is not None
            self.nack_one(receipt, delays[i % len(delays)], "batch failed")

    def nack_one(self, receipt: Receipt, delay: float | None, error: str) -> None:
        m = self.live(receipt)
        if m is None:
            try:
                self.run(self.broker.nack(receipt, error, delay=delay))
            except ReceiptRejected:
                return
            raise AssertionError("nack of a dead receipt was accepted")
        dead = self.run(self.broker.nack(receipt, error, delay=delay))
        assert dead == (m.attempt >= MAX_ATTEMPTS)
        if dead:
            self.fail(m, REASON_FAILED, error)
            return
        self.end_lease(m)
        wait = self.twin.backoff(m.attempt) if delay is None else delay
        assert 0.0 <= wait <= BACKOFF["backoff_max"]
        if wait <= 0:
            m.state = "ready"
        else:
            m.state, m.due = "delayed", self.now + wait

    @precondition(lambda self: self.issued)
    @rule(data=st.data(), before=lag, seconds=st.sampled_from([0.5, 3.0, VT - 0.01, 20.0]))
    def extend(self, data: st.DataObject, before: float, seconds: float) -> None:
        receipt = self.pick(data)
        self.wait(before)
        m = self.live(receipt)
        if m is None:
            try:
                self.run(self.broker.extend(receipt, seconds))
            except ReceiptRejected:
                return
            raise AssertionError("extend of a dead receipt was accepted")
        m.deadline = self.now + seconds
        assert self.run(self.broker.extend(receipt, seconds)) == m.deadline

    @precondition(lambda self: self.issued)
    @rule(data=st.data(), before=lag, delay=retry_delay.filter(lambda d: d is not None))
    def defer(self, data: st.DataObject, before: float, delay: float) -> None:
        receipt = self.pick(data)
        self.wait(before)
        m = self.live(receipt)
        if m is None:
            try:
                self.run(self.broker.defer(receipt, delay))
            except ReceiptRejected:
                return
            raise AssertionError("defer of a dead receipt was accepted")
        self.run(self.broker.defer(receipt, delay))
        self.end_lease(m)
        m.attempt -= 1  # unhandled: the delivery does not count
        if delay <= 0:
            m.state = "ready"
        else:
            m.state, m.due = "delayed", self.now + delay

    @precondition(lambda self: any(m.state == "leased" for m in self.msgs.values()))
    @rule(
        holder=st.sampled_from(HOLDERS),
        reason=st.sampled_from([REASON_RELEASED, REASON_CONSUMER_FAILED]),
        before=lag,
    )
    def release_holder(self, holder: str, reason: str, before: float) -> None:
        self.wait(before)
        self.reap()
        mine = [m for m in self.in_state("leased") if m.holder == holder]
        assert self.run(self.broker.release_holder(holder, reason, "died")) == len(mine)
        for m in mine:
            if reason == REASON_RELEASED:
                self.end_lease(m)
                m.attempt -= 1
                m.state = "ready"
            else:
                self.fail(m, reason, "died")

    @rule(seconds=st.sampled_from([VT, VT / 2, 2 * VT]))
    def set_visibility_timeout(self, seconds: float) -> None:
        """Changing the timeout at run time puts new leases out of grant order."""
        self.broker.config.visibility_timeout = seconds

    @rule(centis=st.integers(0, 200))
    def advance(self, centis: int) -> None:
        self.wait(centis / 100)  # decimal steps: times like 1755.55 sit on float bucket edges

    @precondition(lambda self: any(m.state in ("leased", "delayed") for m in self.msgs.values()))
    @rule(data=st.data())
    def advance_to_a_deadline(self, data: st.DataObject) -> None:
        """Land exactly on a lease deadline or retry due time: the boundary cases."""
        times = sorted(
            m.deadline if m.state == "leased" else m.due
            for m in self.msgs.values()
            if m.state in ("leased", "delayed")
        )
        self.clock._now = max(self.now, data.draw(st.sampled_from(times)))

    @precondition(lambda self: any(m.state == "dead" for m in self.msgs.values()))
    @rule(data=st.data(), everything=st.booleans())
    def redrive(self, data: st.DataObject, everything: bool) -> None:
        self.reap()
        dead = {m.mid for m in self.in_state("dead")}
        if everything:
            # The DLQ's own order (oldest death first) decides the new delivery order.
            ids = [d.message_id for d in reversed(self.broker.dead_letters())]
            assert set(ids) == dead
            assert self.run(self.broker.redrive()) == len(ids)
        else:
            ids = data.draw(st.lists(st.sampled_from(sorted(dead) + ["m-none"]), unique=True))
            assert self.run(self.broker.redrive(ids)) == len(set(ids) & dead)
        for mid in ids:
            if mid in dead:
                m = self.msgs[mid]
                m.state, m.attempt, m.order = "ready", 0, self.next_order()

    # -- invariants -----------------------------------------------------------

    @invariant()
    def every_message_in_exactly_one_place(self) -> None:
        b = self.broker
        # Before any reap: the broker's own indexes partition the unacked messages.
        ready = [m.id for lvl in b._levels.values() for m in lvl.fresh]
        ready += [m.id for lvl in b._levels.values() for _, m in lvl.returned]
        delayed = [m.id for bucket in b._delayed._buckets.values() for m in bucket.values()]
        leased = [m.id for m in b._leases.values()] + [m.id for m in b._stray.values()]
        dead = list(b._dead)
        places = ready + delayed + leased + dead
        assert len(places) == len(set(places)), "a message is in two places"
        assert set(places) == {m.mid for m in self.msgs.values() if m.state != "acked"}
        assert (b._ready, len(b._delayed)) == (len(ready), len(delayed))
        # The reap guards are lower bounds: nothing falls due unseen.
        in_order = [m.deadline for m in b._leases.values()]
        others = [m.deadline for m in b._stray.values()]
        others += [m.deadline for bucket in b._delayed._buckets.values() for m in bucket.values()]
        assert b._lease_due <= min(in_order, default=math.inf)
        assert b._due <= min(in_order + others, default=math.inf)

        # After reaping (stats() reaps): each place holds what the model says.
        stats = b.stats()
        self.reap()
        assert {m.id for lvl in b._levels.values() for m in lvl.fresh} | {
            m.id for lvl in b._levels.values() for _, m in lvl.returned
        } == {m.mid for m in self.in_state("ready")}
        assert {m.id for bucket in b._delayed._buckets.values() for m in bucket.values()} == {
            m.mid for m in self.in_state("delayed")
        }
        assert {m.id for m in [*b._leases.values(), *b._stray.values()]} == {
            m.mid for m in self.in_state("leased")
        }
        assert set(b._dead) == {m.mid for m in self.in_state("dead")}

        self.check_counts(stats)
        assert stats.published == (
            stats.acked + stats.ready + stats.delayed + stats.in_flight + stats.dead
        )

    @invariant()
    def leases_match_the_model(self) -> None:
        self.reap()
        want = {m.mid: (m.holder, m.attempt, m.deadline) for m in self.in_state("leased")}
        shown = self.broker.leases()
        assert len(shown) == len({x.message_id for x in shown}), "a message leased twice"
        assert {x.message_id: (x.consumer_id, x.attempt, x.deadline) for x in shown} == want
        counts: dict[str, int] = {}
        for holder, _, _ in want.values():
            counts[holder] = counts.get(holder, 0) + 1
        assert self.broker.holder_counts() == counts
        b = self.broker
        for receipt, msg in b._stray.items():  # (only a stray lease keeps its receipt)
            assert msg.receipt == receipt
        for receipt, msg in [*b._leases.items(), *b._stray.items()]:
            assert b._by_holder[msg.holder][receipt] is msg
        # _leases doubles as the expiry queue: its deadlines never decrease in order.
        deadlines = [msg.deadline for msg in b._leases.values()]
        assert deadlines == sorted(deadlines)
        assert len(b._stray_expiry) == len(b._stray)

    @invariant()
    def dead_letters_match_the_model(self) -> None:
        self.reap()
        got = {d.message_id: d for d in self.broker.dead_letters()}
        assert set(got) == {m.mid for m in self.in_state("dead")}
        for mid, d in got.items():
            m = self.msgs[mid]
            assert (d.reason, d.attempts, d.priority, d.body) == (
                m.reason,
                m.attempt,
                m.priority,
                m.body,
            )
            if m.reason != REASON_EXPIRED:
                assert d.last_error == m.error
