"""A fleet of real `ccdash worker` processes on one Redis queue, for the tests that
need them: spawn workers (their handler, support.fleet_handlers:record, records each
message it handles), read their logs and records, stop them; publish to the queue and
ask which workers are alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from ccdash.brokers.base import QueueConfig
from ccdash.brokers.redis import RedisBroker
from ccdash.fleet import FleetView
from support.redis_fixtures import RedisServer

ROOT = Path(__file__).resolve().parents[2]  # the repository


def worker_env(out: Path, **extra: str) -> dict[str, str]:
    """The environment of a `ccdash worker` a test starts: the test handlers importable,
    their records under `out`, no control secret inherited from the caller."""
    env = {k: v for k, v in os.environ.items() if k != "CCDASH_CONTROL_SECRET"}
    env.update(PYTHONPATH=f"{ROOT / 'tests'}{os.pathsep}{ROOT}", CCDASH_TEST_OUT=str(out), **extra)
    return env


SECRET = "test-secret-0123456789"  # the control channel's, for workers spawned here


class Fleet:
    """Worker processes of one queue, their logs and their completion records."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp
        self.out = tmp / "done"
        self.out.mkdir()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(
        self,
        name: str,
        *extra: str,
        delay: float = 0.02,
        ttl: float = 1.5,
        vt: float = 60.0,
        concurrency: int = 4,
        secret: str | None = SECRET,
        label: str | None = None,
        handler: str = "support.fleet_handlers:record",
    ) -> None:
        """Start `ccdash worker --name name`; `label` (default: the name) keys its
        process and log here (two processes may try the same name)."""
        label = label or name
        env = worker_env(self.out, CCDASH_TEST_DELAY=str(delay))
        if secret is not None:
            env["CCDASH_CONTROL_SECRET"] = secret
        with (self.tmp / f"{label}.log").open("ab") as log:  # the child keeps its own fd
            self.procs[label] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ccdash.worker",
                    "--broker",
                    self.url,
                    "--handler",
                    handler,
                    "--concurrency",
                    str(concurrency),
                    "--name",
                    name,
                    "--visibility-timeout",
                    str(vt),
                    "--heartbeat-ttl",
                    str(ttl),
                    *extra,
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def records(self) -> list[tuple[str, int]]:
        out = []
        for f in self.out.glob("*.log"):
            for line in f.read_text().splitlines():
                mid, attempt = line.split()
                out.append((mid, int(attempt)))
        return out

    def done(self) -> set[str]:
        return {mid for mid, _ in self.records()}

    def wait_exit(self, name: str, timeout: float = 20) -> int | None:
        """Its exit status; on a timeout, ask it for its task stacks (SIGUSR1), kill it
        and return None (its log then says where it was stuck)."""
        p = self.procs[name]
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGUSR1)
            time.sleep(1)
            p.kill()
            p.wait()
            return None

    def stop_all(self) -> dict[str, int | None]:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        return {name: self.wait_exit(name) for name in self.procs}


def fleet_on(redis_server: RedisServer, tmp_path: Path, name: str) -> Iterator[Fleet]:
    """Worker processes on a fresh queue `name-…` of the session's Redis; any left
    running at the end are killed (the body of each test file's `fleet` fixture)."""
    f = Fleet(f"{redis_server.url}?queue={name}-{uuid.uuid4().hex[:8]}", tmp_path)
    yield f
    for p in f.procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()


async def alive_workers(url: str) -> set[str]:
    """Names of the queue's workers whose heartbeat is live."""
    async with FleetView(url) as fv:
        snap = await fv.snapshot()
    return {w.name for w in snap.workers if w.alive}


async def publish(url: str, n: int) -> set[str]:
    """Publish `n` messages ({"n": i}) to the queue at `url`; their ids."""
    broker = RedisBroker.from_url(url, QueueConfig(), worker="publisher")
    await broker.open()
    try:
        ids = {broker.publish_nowait({"n": i}) for i in range(n)}
        await broker.flush()
    finally:
        await broker.close()
    return ids


async def has_workers(url: str, n: int) -> bool:
    """Are at least `n` of the queue's workers alive?"""
    return len(await alive_workers(url)) >= n
