"""The SQLite broker against "Contract: queue semantics", on a fake clock.

Every broker-level test of tests/test_memory_broker.py runs here again, unedited,
on a SqliteBroker: this module's `memory_broker` fixture overrides conftest's
and hands out SQLite brokers (tests that look at the memory broker's private
indexes are left out). The SQLite broker commits on a writer thread, so
"settle" here also waits until every queued operation is committed and its
results are back on the loop (FakeClock.advance settles the same way).

Below them: what only a durable store has (reopen, wall-clock deadlines,
permissions, refusals, other processes on the same file).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sqlite3
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import test_memory_broker as contract

from ccdash import clock as clock_module
from ccdash.brokers import open_broker
from ccdash.brokers.base import (
    REASON_CONSUMER_FAILED,
    REASON_EXPIRED,
    REASON_FAILED,
    BrokerError,
    QueueConfig,
    QueueFull,
    ReceiptRejected,
)
from ccdash.brokers.sqlite import SqliteBroker
from ccdash.brokers.sqlite_schema import SCHEMA_VERSION, SqliteOpenError, parse_url
from ccdash.clock import FakeClock

Make = Callable[..., SqliteBroker]

# -- the memory broker's contract tests, on SQLite ------------------------------------

_open: set[SqliteBroker] = set()
_plain_settle = clock_module.settle


async def settle_with_brokers(max_rounds: int = 10_000) -> None:
    """`settle`, and also until no SQLite broker has operations in flight."""
    while True:
        await _plain_settle(max_rounds)
        busy = [b for b in _open if b.pending()]
        if not busy:
            return
        for b in busy:
            await b.flush()


@pytest.fixture(autouse=True)
def _settle_waits_for_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_module, "settle", settle_with_brokers)
    monkeypatch.setattr(contract, "settle", settle_with_brokers)


@pytest.fixture
async def memory_broker(fake_clock: FakeClock, tmp_path: Path) -> AsyncIterator[Make]:
    """Factory: `memory_broker(**QueueConfig fields)` -> a SqliteBroker on `fake_clock`."""
    made: list[SqliteBroker] = []

    def make(**config: Any) -> SqliteBroker:
        config.setdefault("seed", 1)
        broker = SqliteBroker(str(tmp_path / f"q{len(made)}.db"), QueueConfig(**config),
                              clock=fake_clock)
        made.append(broker)
        _open.add(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()
        _open.discard(broker)


def _contract_tests() -> dict[str, Any]:
    tests = {}
    for name, fn in vars(contract).items():
        if not name.startswith("test_") or not inspect.iscoroutinefunction(fn):
            continue
        if "memory_broker" not in inspect.signature(fn).parameters:
            continue
        if "broker._" in inspect.getsource(fn):  # the memory broker's own indexes
            continue
        tests[name] = fn
    return tests


CONTRACT = _contract_tests()
globals().update(CONTRACT)


def test_the_contract_tests_were_found() -> None:
    """The memory broker's contract tests are collected here too (none lost by a rename)."""
    assert len(CONTRACT) >= 40
    assert "test_ack_of_stale_receipt_is_rejected" in CONTRACT
