"""A real redis-server for the Redis tests: our own, on a free 127.0.0.1 port,
with its own temp dir, append-only with fsync always. Never the shared 6379.
On it: a queue per test (`redis_url`), a broker factory (`redis_broker`) and `lease`.

Outside CI a machine without redis-server skips these tests (saying why); in CI
(CI=true) a missing redis-server fails them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ccdash.brokers.base import Delivery, QueueConfig
from ccdash.brokers.redis import RedisBroker
from ccdash.clock import Clock

SHARED_PORT = 6379  # somebody else's Redis: never touch it


def in_ci() -> bool:
    """Is this a CI run (CI set to anything but empty/0/false)?"""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def redis_server_path() -> str:
    """Path of redis-server; skip (or fail, in CI) when it is missing."""
    path = shutil.which("redis-server")
    if path is None:
        if in_ci():
            pytest.fail("redis-server is not installed; CI must provide it (.ci/run installs it)")
        pytest.skip(
            "redis-server is not installed (apt-get install redis-server): "
            "the Redis tests need a real server and only skip outside CI"
        )
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (never the shared Redis port)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != SHARED_PORT:
            return int(port)


class RedisServer:
    """One redis-server process we own; it can be killed and started again."""

    def __init__(self, binary: str, directory: Path, port: int | None = None) -> None:
        self.binary = binary
        self.dir = directory
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0"""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers PING (it replays its append-only file)."""
        assert self.port != SHARED_PORT
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: see {self.dir / 'redis.log'}")
            if self.ping():
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer PING within 15 s")

    def ping(self) -> bool:
        """Does it answer PING (and is done loading)?"""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        """Stop it (SIGKILL when `kill`: a crash)."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def freeze(self) -> None:
        """SIGSTOP it: a paused server (connections stay open, nothing is answered)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen server."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def command(self, *args: str) -> bytes:
        """Run one command with redis-cli-free plain RESP; returns the raw reply."""
        payload = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(payload)
            return s.recv(65536)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's redis-server (tests use separate queue names on it)."""
    server = RedisServer(redis_server_path(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Factory of private servers (for tests that restart or kill theirs)."""
    made: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer(redis_server_path(), tmp_path / f"redis{len(made)}")
        server.dir.mkdir()
        server.start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop(kill=True)


_queues = itertools.count(1)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A URL on the session's server naming a queue no other test uses."""
    return f"{redis_server.url}?queue=t{os.getpid()}-{next(_queues)}"


@pytest.fixture
async def redis_broker(redis_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Factory: `await redis_broker(ttl=.., worker=.., clock=.., **QueueConfig fields)`
    -> an open RedisBroker on this test's queue; all are closed at the end."""
    made: list[RedisBroker] = []

    async def make(
        *,
        ttl: float = 0.6,
        worker: str | None = None,
        fetch: int = 128,
        url: str | None = None,
        clock: Clock | None = None,
        **config: Any,
    ) -> RedisBroker:
        config.setdefault("seed", 1)
        config.setdefault("visibility_timeout", 5.0)
        full = f"{url or redis_url}&ttl={ttl}&fetch={fetch}"
        if worker is not None:
            full += f"&worker={worker}"
        broker = RedisBroker.from_url(full, QueueConfig(**config), clock=clock)
        await broker.open()
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()


async def lease_many(
    broker: RedisBroker, n: int, holder: str = "c", *, within: float = 10.0
) -> list[Delivery]:
    """Wait for and receive exactly `n` messages, all for `holder`."""
    got: list[Delivery] = []
    async with asyncio.timeout(within):
        while len(got) < n:
            await broker.wait_ready()
            got += await broker.receive([holder] * (n - len(got)))
    return got


async def lease(broker: RedisBroker, holder: str = "c", *, within: float = 5.0) -> Delivery:
    """Wait for and receive exactly one message for `holder`."""
    async with asyncio.timeout(within):
        while True:
            await broker.wait_ready()
            got = await broker.receive([holder])
            if got:
                return got[0]
