"""One engine test, three brokers: the `engines` fixture makes engines on memory,
SQLite (a file in the test's tmp dir) or Redis (a queue on the private
redis-server of tests/support/redis_fixtures.py), parametrised like `brokers`.

    async def test_x(engines: Engines) -> None:
        clock = engines.clock()
        async with engines.make(cfg, handler=h, clock=clock) as engine: ...

The broker is passed as a URL, as an application passes it, so the engine opens
and closes it. A test on the fake clock is marked `fake_clock_only` (memory and
SQLite): Redis keeps its own time. `engines.clock()` hands out a fake clock that
keeps up with the SQLite broker's writer thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ccdash import Engine, EngineConfig
from ccdash.brokers.sqlite import SqliteBroker
from ccdash.clock import Clock, FakeClock
from support.settling_clock import SettlingClock


class Engines:
    """Makes engines on one broker kind."""

    def __init__(self, kind: str, tmp_path: Path, redis_url: str | None) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.redis_url = redis_url
        self.made = 0

    def clock(self) -> SettlingClock:
        """A fresh fake clock for engines of this kind (not on Redis)."""
        assert self.kind != "redis", "Redis keeps real time: mark the test fake_clock_only"
        return SettlingClock()

    def url(self) -> str:
        """The broker URL for the next engine: its own file on SQLite, its own worker
        name on the test's Redis queue."""
        self.made += 1
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp_path / f'e{self.made}.db'}"
        if self.kind == "redis":
            assert self.redis_url is not None
            return f"{self.redis_url}&ttl=0.6&worker=e{self.made}"
        return "memory"

    def make(
        self, config: EngineConfig | None = None, *, clock: Clock | None = None, **handlers: Any
    ) -> Engine:
        """`Engine(config, broker=<this kind>, clock=clock, **handlers)`."""
        if isinstance(clock, FakeClock):
            assert isinstance(clock, SettlingClock), "use engines.clock() for a fake clock"
        engine = Engine(config, broker=self.url(), clock=clock, **handlers)
        if isinstance(clock, SettlingClock) and isinstance(engine.broker, SqliteBroker):
            clock.watch(engine.broker)
        return engine


@pytest.fixture
def engines(broker_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Engines:
    """Engines on this test's broker kind (see the module docstring)."""
    url = request.getfixturevalue("redis_url") if broker_kind == "redis" else None
    return Engines(broker_kind, tmp_path, url)
