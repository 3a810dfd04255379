"""The dispatcher: slot accounting and the balancer, and nothing else.

Work flows publish -> broker -> dispatch (the balancer picks a consumer with
room) -> consumer buffer -> handler -> ack/nack. Dispatch runs inline when a
consumer frees a slot or a message is published; one dispatcher task parks on
the broker for what arrives otherwise (retries coming due, expired leases).

Slot accounting: `c.held` is what consumer c holds (buffered + in the handler);
`room_total` is the sum of every consumer's `room`. Only this module changes
either, so the two always agree (a test checks it under random operations).

Two tiers of room. A consumer down to its refill mark is hungry: its `room` (up
to its prefetch) counts in `room_total`, and refills come in batches. Above the
mark it may still have spare slots (it finished some, or a publish found it part
full): those consumers are in `spare` (checked when used), and new work goes
there when nobody is hungry, so every consumer holds up to its prefetch whenever
work is ready, however the messages arrive.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping

from ccdash.brokers.base import REASON_RELEASED, Broker, Delivery
from ccdash.engine.balancers import Balancer, Candidates, make_balancer
from ccdash.engine.consumer import Consumer
from ccdash.engine.joiners import Joiners
from ccdash.waiters import Waiters


class Dispatcher:
    """Hands ready messages to consumers with room, as the balancer picks."""

    def __init__(
        self,
        broker: Broker,
        consumers: Mapping[str, Consumer],
        joiners: Joiners,
        balancer: str,
        rng: random.Random,
    ) -> None:
        self.broker = broker
        self.consumers = consumers  # the pool's live consumers (not ended), oldest first
        self.joiners = joiners
        self._waiting = joiners.waiting  # the same Waiters, read on the hot path
        self.rng = rng
        self.balancer: Balancer = make_balancer(balancer, rng)
        # Consumers with room (room > 0), kept as room changes: the balancer picks
        # among them without a scan of the pool.
        self.hungry: Candidates[Consumer] = Candidates()
        self.balancer.attach(self.hungry)
        self._spare_balancer: Balancer = make_balancer(balancer, rng)
        # Fast path where the broker offers it (the memory broker never suspends).
        self.receive_nowait: Callable[[list[str]], list[Delivery]] | None = getattr(
            broker, "receive_nowait", None
        )
        self.room_total = 0
        # Consumers that may have spare slots above their refill mark, in the order
        # they got them (a superset: each is checked when used).
        self.spare: dict[Consumer, None] = {}
        self._paused = False
        self._stopping = False
        # Hands out work without a round trip now: a broker that never suspends
        # (receive_nowait), neither paused nor stopping. Kept as the flags change.
        self.direct = self.receive_nowait is not None
        self._room = Waiters()  # the dispatcher task, parked while nobody has room
        if self.receive_nowait is not None:
            broker.on_ready = self.on_ready

    @property
    def paused(self) -> bool:
        """Consumption is paused: hand out nothing until resumed."""
        return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self._paused = value
        self.direct = self.receive_nowait is not None and not value and not self._stopping

    @property
    def stopping(self) -> bool:
        """The engine is shutting down: hand out nothing more."""
        return self._stopping

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self._stopping = value
        self.direct = self.receive_nowait is not None and not self._paused and not value

    def set_balancer(self, name: str) -> None:
        """Switch the strategy; it takes effect from the next pick."""
        self.balancer = make_balancer(name, self.rng)
        self.balancer.attach(self.hungry)
        self._spare_balancer = make_balancer(name, self.rng)

    def set_weight(self, c: Consumer, weight: int) -> None:
        """Give c this weight from the next pick: filed again among those with room (a
        balancer that keeps state per member hears of it); one without room rejoins
        under it."""
        c.weight = weight
        if c in self.hungry:
            self.hungry.put(c)

    # -- what the pool tells it ------------------------------------------------

    def admit(self, c: Consumer) -> None:
        """c may take work now (started warm, or warmed up): count its room."""
        self.room_total += c.room
        self._sync(c)
        self.room_changed()

    def _sync(self, c: Consumer) -> None:
        """c's room or holding changed: keep the candidates in step."""
        if c.room > 0:
            self.hungry.put(c)
        else:
            self.hungry.discard(c)

    def withdraw(self, c: Consumer) -> None:
        """c is about to stop taking work (draining, failing, stopping): drop its room.
        Call it before the change that makes c stop accepting."""
        if c.accepting:
            self.room_total -= c.room
        self.hungry.discard(c)

    def take_back(self, c: Consumer) -> list[Delivery]:
        """Empty c's buffer (what it has not started); the caller releases the leases."""
        buffered = list(c.buffer)
        c.buffer.clear()
        c.held -= len(buffered)
        self.hungry.discard(c)
        return buffered

    def forget(self, c: Consumer) -> None:
        """c failed and its leases were released: it holds nothing any more."""
        c.buffer.clear()
        c.current.clear()
        c.held = 0
        self.hungry.discard(c)

    # -- what a consumer tells it (the consumer's `Slots`) ----------------------

    def free_slots(self, c: Consumer, n: int) -> bool:
        """A consumer finished `n` deliveries; True if it should be given more now."""
        before = c.room
        c.held -= n
        if c.low < c.held:
            self.spare[c] = None
        room = c.room
        self._sync(c)
        if room != before:
            self.room_total += room - before
            self.room_changed()
        self._check_joiners_if_empty(c)
        return room > 0 and not self.paused and not self.stopping

    def has_spare(self, c: Consumer) -> None:
        """c, above its refill mark, finished a delivery and has a spare slot now."""
        spare = self.spare
        if not spare and self._room:
            self._room.wake_all()  # the dispatcher fills spare slots with what arrives
        spare[c] = None

    def _check_joiners_if_empty(self, c: Consumer) -> None:
        # While c still holds a delivery, something is outstanding: no joiner to wake
        # (the health tick checks anyway, for leases that expired into the DLQ unseen).
        if self._waiting and c.held <= 0:
            self.joiners.check()

    def took(self, c: Consumer, held: int) -> None:
        """c, at its refill mark, took fewer deliveries than it had room for straight
        from the broker (the queue ran dry): it holds `held` and keeps the rest as room."""
        c.held = held
        self.room_total += c.room
        self._sync(c)
        self.room_changed()
        self._check_joiners_if_empty(c)
        if c.low < held:
            self.spare[c] = None

    def refill(self, c: Consumer, n: int) -> bool:
        """A consumer finished `n` deliveries the long way (a batch, a failure, a
        guard; the per-message path refills itself, see `Slots`): refill it through
        the balancer if it reached its mark. True if the caller should
        `await dispatch(c)` (a broker that may suspend)."""
        if not self.free_slots(c, n):
            return False
        if self.receive_nowait is None:
            return True
        self.dispatch_nowait(c)
        return False

    # -- dispatch ------------------------------------------------------------------

    def _reserve(self, hint: Consumer | None) -> list[Consumer]:
        """Pick who gets the next ready messages, as the balancer says, and reserve
        their slots: one entry per message (empty if nobody has room or nothing is ready)."""
        room = self.room_total
        if self.paused or self.stopping:
            return []
        if room <= 0:
            return self._reserve_spare() if self.spare and hint is None else []
        ready = self.broker.ready_count()
        if ready <= 0:
            return []
        if hint is not None and hint.room == room:  # the only hungry one: no choice
            k = min(room, ready, 256)
            hint.held += k
            self.room_total += hint.room - room
            self._sync(hint)
            if hint.low < hint.held < hint.limit:
                self.spare[hint] = None
            return [hint] * k
        # room_total is what the candidates can take; each stays one until it is full.
        return self._fill(self.hungry, self.balancer, min(room, ready, 256))

    def _fill(self, cands: Candidates[Consumer], balancer: Balancer, k: int) -> list[Consumer]:
        """Reserve k slots among `cands` as `balancer` picks (k <= their free slots)."""
        picks = []
        before: dict[Consumer, int] = {}
        pick = balancer.pick
        for _ in range(k):
            c = pick(cands)
            picks.append(c)
            if c not in before:
                before[c] = c.room
            c.held += 1
            if c.held >= c.limit:
                cands.discard(c)
            else:
                cands.put(c)  # filed again under what it holds now
        for c, r in before.items():
            self.room_total += c.room - r
            if c.room <= 0:
                self.hungry.discard(c)
            if c.low < c.held < c.limit:  # filled past its mark but not to its prefetch
                self.spare[c] = None
        return picks

    def _reserve_spare(self) -> list[Consumer]:
        """Nobody is hungry: fill consumers' spare slots above their refill mark, as
        the balancer picks among them (their `room` stays 0, so room_total too)."""
        ready = self.broker.ready_count()
        if ready <= 0:
            return []
        spare = self.spare
        cands = []
        for c in list(spare):
            if c.low < c.held < c.limit and c.accepting and c.id in self.consumers:
                cands.append(c)
            else:  # full, hungry (counted in room_total) or gone
                del spare[c]
        free = sum(c.limit - c.held for c in cands)
        k = min(free, ready, 256)
        if not k:
            return []
        if k == free:  # enough for every spare slot: no choice for the balancer to make
            picks = []
            for c in cands:
                picks += [c] * (c.limit - c.held)
                c.held = c.limit
                del spare[c]
            return picks
        chosen = Candidates.of(cands)
        self._spare_balancer.attach(chosen)
        picks = self._fill(chosen, self._spare_balancer, k)
        for c in picks:
            if c.held >= c.limit:
                spare.pop(c, None)
        return picks

    def _unreserve(self, picks: list[Consumer]) -> None:
        """Fewer messages than reserved slots: give the slots back."""
        for c in picks:
            r = c.room
            c.held -= 1
            self.room_total += c.room - r
            if c.accepting:
                self._sync(c)
            if c.low < c.held < c.limit:
                self.spare[c] = None
        if picks and self._waiting:
            self.joiners.check()

    def dispatch_nowait(self, hint: Consumer | None) -> None:
        """`dispatch` on a broker that never suspends (`receive_nowait`): nothing runs
        between the balancer's picks and the hand-over, so every pick still accepts."""
        picks = self._reserve(hint)
        if picks:
            got = self.receive_nowait([c.id for c in picks])  # type: ignore[misc]
            for c, d in zip(picks, got, strict=False):
                c.give(d)
            if len(got) < len(picks):
                self._unreserve(picks[len(got) :])

    async def dispatch(self, hint: Consumer | None) -> None:
        """Lease ready messages to hungry consumers, as the balancer picks."""
        if self.receive_nowait is not None:
            self.dispatch_nowait(hint)
            return
        picks = self._reserve(hint)
        if not picks:
            return
        broker = self.broker
        got = await broker.receive([c.id for c in picks])
        for c, d in zip(picks, got, strict=False):
            if c.accepting:
                c.give(d)
            else:  # failed or began draining while the receive was under way
                await broker.release([d.receipt], REASON_RELEASED)
                if c.id in self.consumers:
                    c.held -= 1
        if len(got) < len(picks):
            self._unreserve(picks[len(got) :])

    def on_ready(self) -> bool:
        """The broker's reader buffered messages: hand them out now, in its task (the
        consumer starts one loop turn sooner than through the dispatcher task). True
        while consumers have room, i.e. the dispatcher task may stay parked on it."""
        if self.room_total > 0 or self.spare:
            self.dispatch_nowait(None)
        return (self.room_total > 0 or bool(self.spare)) and not self.paused

    async def run(self) -> None:
        """Park on the broker while consumers have room (hungry or spare: work that
        arrives from the broker, not from a publish, fills both); on room while they
        don't."""
        while True:
            if (self.room_total > 0 or self.spare) and not self.paused:
                await self.broker.wait_ready()
                await self.dispatch(None)
                await asyncio.sleep(0)  # let woken consumers run before the next round
            else:
                await self._room.park()

    def room_changed(self) -> None:
        """Unpark the dispatcher task if it waits for room."""
        if self._room:
            self._room.wake_all()
