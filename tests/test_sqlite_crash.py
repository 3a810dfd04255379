"""A process running the engine on a SQLite file is killed (SIGKILL) mid-run; another
process on the same file finishes the run. Nothing published is lost, nothing acked
comes back, and only messages in flight at the kill are handled twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ccdash.brokers.base import QueueConfig
from ccdash.brokers.sqlite import SqliteBroker

ROOT = Path(__file__).resolve().parents[1]

# The worker: an engine with a slow handler that writes each completion to a file
# (one write() per line: it survives SIGKILL) a little before returning, which acks it.
# In "run" mode it also publishes, recording each id once `publish` has returned.
WORKER = """
import asyncio, sys
from ccdash import Engine, EngineConfig

async def main(db, done_path, published_path, mode, n):
    done = open(done_path, "a", buffering=1)

    async def handler(d):
        await asyncio.sleep(0.002)
        done.write(f"{d.message_id}\\n")
        await asyncio.sleep(0.002)  # done but not yet acked: a kill now means a repeat

    cfg = EngineConfig(consumers=4, prefetch=4, visibility_timeout=60, max_attempts=5)
    async with Engine(cfg, handler=handler, broker=f"sqlite:///{db}") as engine:
        if mode == "run":
            published = open(published_path, "a", buffering=1)
            for i in range(n):
                mid = await engine.publish({"i": i})
                published.write(f"{mid}\\n")
                if i % 20 == 19:
                    await asyncio.sleep(0.01)  # a steady producer, still going at the kill
        await engine.join(timeout=60)
    print("finished", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
"""


def lines(path: Path) -> list[str]:
    """Complete lines of a file (a partial last line does not count)."""
    if not path.exists():
        return []
    text = path.read_text()
    return text.split("\n")[:-1]


def start(
    script: Path, db: Path, done: Path, published: Path, mode: str, n: int
) -> subprocess.Popen[bytes]:
    """A worker process."""
    return subprocess.Popen(
        [sys.executable, str(script), str(db), str(done), str(published), mode, str(n)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_killed_process_loses_nothing_and_repeats_only_in_flight_work(tmp_path: Path) -> None:
    """SIGKILL mid-run: a new process finishes; 0 lost, duplicates only of in-flight ones."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    db, done, published = tmp_path / "q.db", tmp_path / "done.txt", tmp_path / "published.txt"
    n = 1200

    first = start(script, db, done, published, "run", n)
    deadline = time.monotonic() + 30
    while len(lines(done)) < 150:  # well into the run: publishing and consuming
        if first.poll() is not None:
            pytest.fail(f"the first worker ended early: {first.communicate()[1].decode()}")
        assert time.monotonic() < deadline, "the first worker made no progress"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert first.returncode == -signal.SIGKILL

    # What the file says was in flight at the kill: leased, not acked.
    conn = sqlite3.connect(db)
    in_flight = {mid for (mid,) in conn.execute("SELECT mid FROM msgs WHERE state = 2")}
    stored = {mid for (mid,) in conn.execute("SELECT mid FROM msgs")}
    conn.close()
    recorded = lines(published)
    assert 0 < len(recorded) < n, "kill the publisher mid-run"
    acked_before = set(lines(done)) - stored  # done and gone from the file
    assert acked_before

    second = start(script, db, done, published, "finish", 0)
    t0 = time.monotonic()
    out, err = second.communicate(timeout=60)
    # The dead process's leases (60 s visibility timeout) came back at once, not on expiry.
    assert time.monotonic() - t0 < 20
    assert second.returncode == 0, err.decode()
    assert b"finished" in out

    completions = Counter(lines(done))
    lost = [mid for mid in recorded if mid not in completions]
    assert lost == [], f"{len(lost)} published messages never completed"
    duplicates = {mid for mid, k in completions.items() if k > 1}
    assert duplicates <= in_flight, f"repeated without being in flight: {duplicates - in_flight}"
    assert not duplicates & acked_before, "an acked message came back"
    print(
        f"published {len(recorded)} of {n} before the kill, {len(in_flight)} in flight, "
        f"{len(duplicates)} handled twice"
    )
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM msgs").fetchone() == (0,)
    conn.close()
    assert os.stat(db).st_mode & 0o077 == 0


HOLDER = """
import asyncio, sys, time
from ccdash.brokers.base import QueueConfig
from ccdash.brokers.sqlite import SqliteBroker

async def main(path):
    broker = SqliteBroker(path, QueueConfig(visibility_timeout=60))
    await broker.open()
    got = await broker.receive(["c1"] * 3)
    print(len(got), flush=True)
    time.sleep(600)  # holds the leases until killed

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.slow
async def test_an_idle_process_takes_over_a_dead_processes_leases_quickly(tmp_path: Path) -> None:
    """A consumer parked on the file gets a killed process's leases back within about a
    second, not after their 60 s visibility timeout, as the next attempt."""
    path = tmp_path / "q.db"
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    broker = SqliteBroker(str(path), QueueConfig(visibility_timeout=60))
    ids = [await broker.publish(i) for i in range(3)]
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(path),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert await asyncio.wait_for(holder.stdout.readline(), 20) == b"3\n"

    async def consume() -> list[Any]:  # as the engine's dispatcher does
        while True:
            await broker.wait_ready()
            got = await broker.receive(["c2"] * 3)
            if got:
                return got

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    assert not consumer.done()  # parked: the other process holds everything
    holder.kill()
    await holder.communicate()
    t0 = time.monotonic()
    got = await asyncio.wait_for(consumer, 5)
    assert time.monotonic() - t0 < 2.5
    assert [(d.message_id, d.attempt) for d in got] == [(i, 2) for i in ids]
    assert broker.stats().dead == 0
    await broker.close()
