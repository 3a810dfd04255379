"""Shared fixtures: a fake clock and a memory-broker factory on it."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from support.settling_clock import SettlingClock

from ccdash.brokers.base import QueueConfig
from ccdash.brokers.memory import MemoryBroker
from ccdash.clock import FakeClock

# a private redis-server for the Redis tests; the three-broker harnesses (contract,
# engine); a tmux terminal for the end-to-end tests
pytest_plugins = [
    "support.redis_fixtures",
    "support.broker_harness",
    "support.engine_harness",
    "support.terminal",
    "chaos.table",  # the chaos table, gathered where it is printed (xdist's controller)
]


@pytest.fixture
def fake_clock() -> SettlingClock:
    """A clock that moves only when the test advances it (and keeps up with the SQLite
    brokers the `brokers` harness makes on it)."""
    return SettlingClock()


@pytest.fixture
def memory_broker(fake_clock: FakeClock) -> Callable[..., MemoryBroker]:
    """Factory: `memory_broker(**QueueConfig fields)` -> a MemoryBroker on `fake_clock`."""

    def make(**config: Any) -> MemoryBroker:
        config.setdefault("seed", 1)
        return MemoryBroker(QueueConfig(**config), clock=fake_clock)

    return make


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests using the `brokers` or `engines` harness run on memory, sqlite and redis."""
    from support.broker_harness import parametrize_brokers  # a plugin: imported once registered

    parametrize_brokers(metafunc)


def pytest_configure(config: pytest.Config) -> None:
    """Let the test session's own interpreters cache bytecode. The suite starts a few
    hundred of them (xdist workers, `ccdash` runs, fleet workers); with
    PYTHONDONTWRITEBYTECODE set, each one compiled every ccdash module it imported
    and each worker rewrote every test module again (collection: 15.5 CPU-s a worker
    uncached, 6.3 cached). Python's own default, and __pycache__ is ignored by git;
    this process itself keeps the setting it was started with."""
    if not hasattr(config, "workerinput"):  # the controller, before it starts workers
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """The default run spreads over 4 workers (addopts: -n 4); the chaos suite over 2
    (its scenarios mostly wait on real processes and timers: 3 minutes, not 6); the
    benchmarks run in one process: their figures need the machine to themselves."""
    words = (config.getoption("markexpr", "") or "").split()
    if "not" in words or getattr(config.option, "numprocesses", None) != 4:  # -n given
        return
    if "bench" in words:
        config.option.numprocesses = 0
    elif "chaos" in words:
        config.option.numprocesses = 2
