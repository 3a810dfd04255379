"""Where a batch of message ids is now in a SQLite queue file: still outstanding
(ready, delayed or leased), dead, or gone (a row leaves the file only when it is
acked or purged), with the file's acked counter.

The loss checker of a run that shares the file with other processes needs this:
they run their own handlers, so the run's own records never see their completions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from ccdash.brokers.sqlite.schema import BUSY_TIMEOUT_MS

DEAD = 3  # msgs.state


def locate_in_file(path: str, ids: Iterable[str]) -> tuple[frozenset[str], frozenset[str], int]:
    """(outstanding, dead, acked total) for `ids` in the queue file at `path`: one read
    transaction, one scan of the rows the file holds. Blocking: call it off the loop."""
    wanted = set(ids)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only = 1")
        conn.execute("BEGIN")  # the rows and the counter as of one commit
        outstanding: set[str] = set()
        dead: set[str] = set()
        if wanted:
            for mid, state in conn.execute("SELECT mid, state FROM msgs"):
                if mid in wanted:
                    (dead if state == DEAD else outstanding).add(mid)
        (acked,) = conn.execute("SELECT acked FROM counters WHERE k = 0").fetchone()
        conn.execute("COMMIT")
    finally:
        conn.close()
    return frozenset(outstanding), frozenset(dead), int(acked)


__all__ = ["locate_in_file"]
