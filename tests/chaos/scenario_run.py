"""One chaos scenario: its temp dir, ledger, publisher record, processes and row of
the table, with the waits and the run endings the scenarios share."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.polling import wait_until
from support.redis_fixtures import RedisServer

from chaos.books import Books, Row, read_ids, read_ledger
from chaos.holdings import RedisQueue
from chaos.procs import Proc, Procs

# A publisher's count when it runs until the faults are over (then SIGTERM): a fixed
# count can run out before the faults do on a slow machine, and a wait for more
# completions would then wait for ever.
OPEN_ENDED = 1_000_000


@dataclass
class Chaos:
    """One scenario: a temp dir, the ledger, the publisher's record, its processes,
    its row of the table."""

    tmp: Path
    ledger: Path
    published: Path
    procs: Procs
    row: Row

    def redis_queue(self, server: RedisServer) -> RedisQueue:
        """A queue on `server` that no other scenario uses."""
        return RedisQueue(server.port, f"chaos-{uuid.uuid4().hex[:8]}")

    def wait(self, pred: Callable[[], Any], within: float, what: str) -> float:
        """`wait_until`, failing at once when one of the scenario's processes crashes."""
        return wait_until(pred, within, what, guard=self.procs.check_running)

    def freeze_holding(
        self, proc: Proc, holds: Callable[[], set[str]], within: float = 15.0
    ) -> set[str]:
        """SIGSTOP `proc` at a moment it holds messages (`holds()`: their ids), so that a
        kill next hits work in flight; returns what it holds, frozen in place."""
        deadline = time.monotonic() + within
        while True:
            self.wait(
                lambda: bool(holds()),
                max(0.0, deadline - time.monotonic()),
                f"{proc.name} to hold messages",
            )
            proc.freeze()
            held = holds()
            if held:
                return held
            proc.send(signal.SIGCONT)  # it finished them meanwhile: try again

    def completed(self) -> set[str]:
        """Ids the ledger says were handled."""
        return {c.mid for c in read_ledger(self.ledger)}

    def wait_progress(self, k: int, within: float = 20.0) -> None:
        """Until the ledger has `k` more completions than now."""
        start = len(read_ledger(self.ledger))
        wait_until(
            lambda: len(read_ledger(self.ledger)) >= start + k,
            within,
            f"{k} more completions",
            guard=self.procs.check_running,
        )

    def recovered(
        self,
        t0: float,
        held: set[str],
        dead: Callable[[], dict[str, str]],
        total: int,
        within: float = 30.0,
    ) -> float:
        """Seconds from `t0` (the fault, or its end) until every id of `held` was handled
        or dead-lettered and work flows again: 50 more completions, or the publisher
        has recorded all its `total` messages and every one is done."""
        start = len(read_ledger(self.ledger))
        self.wait_settled(held, dead, within, "what was in flight at the fault")

        def flowing() -> bool:
            if len(read_ledger(self.ledger)) >= start + 50:
                return True
            ids = set(read_ids(self.published))
            return len(ids) >= total and ids <= self.completed() | set(dead())

        self.wait(flowing, within, "work flowing again")
        return time.monotonic() - t0

    def wait_settled(
        self, ids: set[str], dead: Callable[[], dict[str, str]], within: float, what: str
    ) -> float:
        """Until every id of `ids` was handled or dead-lettered; how long it took."""
        return wait_until(
            lambda: ids <= self.completed() | set(dead()),
            within,
            what,
            guard=self.procs.check_running,
        )

    def redis_fleet(
        self, q: RedisQueue, base_url: str, names: Iterable[str], **options: Any
    ) -> dict[str, Proc]:
        """Start `ccdash worker`s on `q` and wait until each beats."""
        fleet = {name: self.procs.worker(q.url(base_url), name, **options) for name in names}
        wait_until(
            lambda: all(q.worker_alive(n) for n in fleet),
            20,
            "the workers beating",
            guard=self.procs.check_running,
        )
        return fleet

    def finish_redis(
        self,
        q: RedisQueue,
        publisher: Proc,
        fleet: dict[str, Proc],
        n: int | None,
        guilty: Callable[[], Iterable[str]] = tuple,
    ) -> Books:
        """The end of a Redis run: the publisher exits 0 having recorded `n` ids (None:
        it was stopped, any number), every one is handled or dead-lettered, each worker
        stops on SIGTERM with 0; the books."""
        assert publisher.wait_exit(60) == 0, publisher.tail()
        published = set(read_ids(self.published))
        assert n is None or len(published) == n
        self.wait_settled(published, q.dead_by_id, 60, "every published message handled")
        for proc in fleet.values():
            assert proc.stop(signal.SIGTERM, 15, dump=True) == 0, f"{proc.name}: {proc.tail()}"
        return Books.of(published, self.ledger, q.dead_by_id(), q.queued(), guilty())
