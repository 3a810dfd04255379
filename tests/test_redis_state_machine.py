"""Random operation sequences against the Redis broker, checked against a model.

The memory/SQLite machine (test_broker_state_machine) steps a broker on a fake
clock; Redis keeps real time, so this machine has its own rules: each runs on an
event loop the machine keeps (`self.run`), on a queue name no other example uses,
with a visibility timeout far longer than any example (no lease expires) and
delays of either 0 (ready at once) or an hour (stays delayed). Nothing checks
exact deadlines. After every step, through the public views only (stats, leases,
holder_counts, dead_letters, outstanding): every published message is in exactly
one place, no message is leased twice, the counts match the model, and receipts
that were already used are refused.

As in the contract harness (tests/support/broker_harness.py), the worker's read-ahead
buffer is handed back before the counts are read: read ahead but not leased is
"ready" in the contract's terms.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from support.redis_fixtures import RedisServer

from ccdash.brokers.base import (
    REASON_CONSUMER_FAILED,
    REASON_FAILED,
    REASON_RELEASED,
    QueueConfig,
    Receipt,
    ReceiptRejected,
)
from ccdash.brokers.redis import RedisBroker

T = TypeVar("T")

VT = 600.0  # no lease runs out during an example
LONG = 3600.0  # a delay that outlasts the example
MAX_ATTEMPTS = 2
HOLDERS = ("h1", "h2", "h3")
STATES = ("ready", "delayed", "leased", "dead", "acked")
STEP_TIMEOUT = 10.0  # no single step may hang the run

delay = st.sampled_from([0.0, LONG])
_queues = itertools.count(1)


@dataclass
class M:
    """The model's view of one message."""

    mid: str
    body: int
    priority: int
    state: str = "ready"
    attempt: int = 0
    receipt: Receipt | None = None
    holder: str = ""
    reason: str = ""
    error: str = ""


class RedisBrokerMachine(RuleBasedStateMachine):
    """Drive one RedisBroker (one worker, three holders) and a model together."""

    base_url = ""  # set by the test: the session redis-server's URL

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        queue = f"sm{os.getpid()}-{next(_queues)}"
        config = QueueConfig(visibility_timeout=VT, max_attempts=MAX_ATTEMPTS, seed=7)
        self.broker = RedisBroker.from_url(
            f"{self.base_url}?queue={queue}&worker=w-{queue}&ttl=3", config
        )
        self.msgs: dict[str, M] = {}
        self.issued: set[Receipt] = set()
        self.used: set[Receipt] = set()  # receipts whose lease ended (acked, nacked, ...)
        self.bodies = 0
        self.totals = dict(published=0, acked=0, dead_lettered=0)
        self.run(self.broker.open())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one broker coroutine to its end on the machine's loop (bounded)."""
        return self.loop.run_until_complete(asyncio.wait_for(coro, STEP_TIMEOUT))

    def teardown(self) -> None:
        try:
            self.run(self.broker.close())
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    # -- the model ----------------------------------------------------------

    def in_state(self, state: str) -> list[M]:
        return [m for m in self.msgs.values() if m.state == state]

    def live(self, receipt: Receipt) -> M | None:
        for m in self.in_state("leased"):
            if m.receipt == receipt:
                return m
        return None

    def pick(self, data: st.DataObject) -> Receipt:
        """Mostly a receipt the model holds as leased, else any ever issued (stale)."""
        held = [m.receipt for m in self.in_state("leased") if m.receipt is not None]
        if held and data.draw(st.sampled_from([True, True, True, False]), label="held"):
            return data.draw(st.sampled_from(sorted(held, key=str)), label="receipt")
        return data.draw(st.sampled_from(sorted(self.issued, key=str)), label="receipt")

    def end_lease(self, m: M) -> None:
        assert m.receipt is not None
        self.used.add(m.receipt)
        m.receipt, m.holder = None, ""

    def fail(self, m: M, reason: str, error: str) -> None:
        """A lease ended in failure: ready again, or dead at max_attempts."""
        self.end_lease(m)
        if m.attempt >= MAX_ATTEMPTS:
            m.state, m.reason, m.error = "dead", reason, error
            self.totals["dead_lettered"] += 1
        else:
            m.state = "ready"

    async def _sync(self) -> None:
        """Everything in flight has reached Redis; the read-ahead goes back; fresh counts."""
        await self.broker.settled()
        await self.broker.hand_back()
        await self.broker.refresh()

    async def _receive(self, holders: list[str]) -> list[Any]:
        b = self.broker
        await self._sync()
        if b.stats().ready == 0:
            return []
        await b.wait_ready()
        await b.settled()
        return await b.receive(holders)

    def expect_rejected(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        try:
            self.run(coro)
        except ReceiptRejected:
            return
        raise AssertionError(f"{what} of a dead receipt was accepted")

    # -- rules --------------------------------------------------------------

    @rule(priorities=st.lists(st.integers(0, 2), min_size=1, max_size=3))
    def publish(self, priorities: list[int]) -> None:
        for priority in priorities:
            self.bodies += 1
            mid = self.run(self.broker.publish(self.bodies, priority=priority))
            assert mid not in self.msgs
            self.msgs[mid] = M(mid, self.bodies, priority)
            self.totals["published"] += 1

    @precondition(lambda self: any(m.state == "ready" for m in self.msgs.values()))
    @rule(holders=st.lists(st.sampled_from(HOLDERS), min_size=1, max_size=3))
    def receive(self, holders: list[str]) -> None:
        ready = self.in_state("ready")
        got = self.run(self._receive(holders))
        assert len(got) == min(len(holders), len(ready)), (got, ready)
        # Highest priority first: what was handed out is the top of the ready set.
        top = sorted((m.priority for m in ready), reverse=True)[: len(got)]
        assert sorted((d.priority for d in got), reverse=True) == top
        for d, holder in zip(got, holders, strict=False):
            m = self.msgs.get(d.message_id)
            assert m is not None and m.state == "ready", d
            assert d.receipt not in self.issued, "receipt reused"
            self.issued.add(d.receipt)
            m.state, m.receipt, m.holder = "leased", d.receipt, holder
            m.attempt += 1
            assert (d.consumer_id, d.attempt, d.body, d.priority) == (
                holder,
                m.attempt,
                m.body,
                m.priority,
            )

    @precondition(lambda self: self.issued)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        receipt = self.pick(data)
        m = self.live(receipt)
        if m is None:
            self.expect_rejected(self.broker.ack(receipt), "ack")
            return
        self.run(self.broker.ack(receipt))
        self.end_lease(m)
        m.state = "acked"
        self.totals["acked"] += 1
        self.expect_rejected(self.broker.ack(receipt), "a second ack")

    @precondition(lambda self: self.issued)
    @rule(data=st.data(), wait=delay, error=st.sampled_from(["boom", "timeout"]))
    def nack(self, data: st.DataObject, wait: float, error: str) -> None:
        receipt = self.pick(data)
        m = self.live(receipt)
        if m is None:
            self.expect_rejected(self.broker.nack(receipt, error, delay=wait), "nack")
            return
        dead = self.run(self.broker.nack(receipt, error, delay=wait))
        assert dead == (m.attempt >= MAX_ATTEMPTS)
        if dead:
            self.fail(m, REASON_FAILED, error)
            return
        self.end_lease(m)
        m.state = "ready" if wait <= 0 else "delayed"

    @precondition(lambda self: self.issued)
    @rule(data=st.data(), wait=delay)
    def defer(self, data: st.DataObject, wait: float) -> None:
        receipt = self.pick(data)
        m = self.live(receipt)
        if m is None:
            self.expect_rejected(self.broker.defer(receipt, wait), "defer")
            return
        self.run(self.broker.defer(receipt, wait))
        self.end_lease(m)
        m.attempt -= 1  # unhandled: the delivery does not count
        m.state = "ready" if wait <= 0 else "delayed"

    @precondition(lambda self: self.issued)
    @rule(data=st.data(), seconds=st.sampled_from([1.0, 60.0, VT]))
    def extend(self, data: st.DataObject, seconds: float) -> None:
        receipt = self.pick(data)
        m = self.live(receipt)
        if m is None:
            self.expect_rejected(self.broker.extend(receipt, seconds), "extend")
            return
        before = self.broker.clock.now()
        deadline = self.run(self.broker.extend(receipt, seconds))
        assert before + seconds - 1.0 <= deadline <= self.broker.clock.now() + seconds

    @precondition(lambda self: any(m.state == "leased" for m in self.msgs.values()))
    @rule(
        holder=st.sampled_from(HOLDERS),
        reason=st.sampled_from([REASON_RELEASED, REASON_CONSUMER_FAILED]),
    )
    def release_holder(self, holder: str, reason: str) -> None:
        mine = [m for m in self.in_state("leased") if m.holder == holder]
        assert self.run(self.broker.release_holder(holder, reason, "died")) == len(mine)
        for m in mine:
            if reason == REASON_RELEASED:
                self.end_lease(m)
                m.attempt -= 1
                m.state = "ready"
            else:
                self.fail(m, reason, "died")

    @precondition(lambda self: any(m.state == "dead" for m in self.msgs.values()))
    @rule(data=st.data(), everything=st.booleans())
    def redrive(self, data: st.DataObject, everything: bool) -> None:
        dead = {m.mid for m in self.in_state("dead")}
        if everything:
            ids = sorted(dead)
            assert self.run(self.broker.redrive()) == len(ids)
        else:
            ids = data.draw(st.lists(st.sampled_from(sorted(dead) + ["m-none"]), unique=True))
            assert self.run(self.broker.redrive(ids)) == len(set(ids) & dead)
        for mid in ids:
            if mid in dead:
                m = self.msgs[mid]
                m.state, m.attempt, m.reason, m.error = "ready", 0, "", ""

    # -- invariants -----------------------------------------------------------

    @invariant()
    def views_match_the_model(self) -> None:
        b = self.broker
        self.run(self._sync())
        stats = b.stats()
        counts = {s: len(self.in_state(s)) for s in STATES}
        assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (
            counts["ready"],
            counts["delayed"],
            counts["leased"],
            counts["dead"],
        ), stats
        assert (stats.published, stats.acked, stats.dead_lettered) == (
            self.totals["published"],
            self.totals["acked"],
            self.totals["dead_lettered"],
        )
        assert stats.published == (
            stats.acked + stats.ready + stats.delayed + stats.in_flight + stats.dead
        )
        assert b.outstanding() == counts["ready"] + counts["delayed"] + counts["leased"]

        shown = b.leases()
        assert len(shown) == len({x.message_id for x in shown}), "a message leased twice"
        want = {m.mid: (m.holder, m.attempt) for m in self.in_state("leased")}
        assert {x.message_id: (x.consumer_id, x.attempt) for x in shown} == want
        per_holder: dict[str, int] = {}
        for holder, _ in want.values():
            per_holder[holder] = per_holder.get(holder, 0) + 1
        assert b.holder_counts() == per_holder

        got = {d.message_id: d for d in b.dead_letters()}
        assert set(got) == {m.mid for m in self.in_state("dead")}
        for mid, d in got.items():
            m = self.msgs[mid]
            assert (d.reason, d.attempts, d.priority, d.body, d.last_error) == (
                m.reason,
                m.attempt,
                m.priority,
                m.body,
                m.error,
            )

    @invariant()
    def used_receipts_are_refused(self) -> None:
        """A receipt whose lease ended (and was not reissued) is not live."""
        live = {x for x in (m.receipt for m in self.in_state("leased")) if x is not None}
        assert not (self.used & live)
        if self.used:
            stale = sorted(self.used, key=str)[-1]
            self.expect_rejected(self.broker.extend(stale, 1.0), "extend")


def test_redis_broker_state_machine(redis_server: RedisServer) -> None:
    """The model and a real Redis broker agree after every step of random runs."""
    RedisBrokerMachine.base_url = redis_server.url
    run_state_machine_as_test(
        RedisBrokerMachine,
        settings=settings(
            max_examples=int(os.environ.get("CCDASH_REDIS_SM_EXAMPLES", "40")),
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


pytestmark = pytest.mark.slow
