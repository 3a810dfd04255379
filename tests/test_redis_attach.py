"""The dashboard and `ccdash --demo` attached to a Redis fleet: the demo joins it as
one more worker and counts what the others acked; the dashboard shows the remote
workers' consumers and steers them through the signed control channel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_fixtures import RedisServer
from test_redis_fleet import ROOT, Fleet, alive_workers, until

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(redis_server: RedisServer, tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(f"{redis_server.url}?queue=attach-{uuid.uuid4().hex[:8]}", tmp_path)
    yield f
    for p in f.procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()


async def test_demo_on_a_fleet_counts_the_other_workers_acks(fleet: Fleet,
                                                             tmp_path: Path) -> None:
    """`ccdash --demo --broker redis://...` beside a worker: exit 0, nothing lost, and
    the messages the worker handled count as acked (not lost)."""
    fleet.spawn("remote-a", concurrency=4)
    await until(lambda: alive_workers(fleet.url), 15, "the worker to register")
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "ccdash", "--demo", "--broker", fleet.url, "--duration", "3",
         "--seed", "5", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["lost"] == 0 and report["ok"]
    remote = fleet.done()
    assert remote, "the remote worker handled none of the demo's messages"
    # A message both handled (a lease that expired under a slow consumer) is ours.
    assert 0 < report["acked_elsewhere"] <= len(remote)
    assert report["acked"] + report["dead_lettered"] == report["published"]
    assert fleet.stop_all() == {"remote-a": 0}
