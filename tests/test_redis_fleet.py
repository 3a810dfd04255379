"""A fleet of real `ccdash worker` processes on a real redis-server: a worker
SIGKILLed mid-run, Redis restarted mid-run, graceful SIGTERM, and the signed
control channel. Every run ends with 0 lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fleet import ROOT, SECRET, Fleet, fleet_on, has_workers, publish
from support.polling import until
from support.redis_fixtures import RedisServer

from ccdash.fleet import FleetView, send_command
from ccdash.fleet.control import encode_command, send_raw, sign

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(redis_server: RedisServer, tmp_path: Path) -> Iterator[Fleet]:
    yield from fleet_on(redis_server, tmp_path, "fleet")


async def test_sigkilled_worker_messages_go_to_the_others_before_the_visibility_timeout(
    fleet: Fleet,
) -> None:
    """Three workers; one SIGKILLed mid-run holds leases; the others claim them once
    its heartbeat expires (seconds, not the 60 s visibility timeout); 0 lost."""
    for name in ("w1", "w2", "w3"):
        fleet.spawn(name, delay=0.03)
    await until(lambda: has_workers(fleet.url, 3), 20, "three workers")
    ids = await publish(fleet.url, 600)
    await until(lambda: len(fleet.done()) >= 150, 30, "a quarter done")
    async with FleetView(fleet.url) as fv:
        held = (await fv.snapshot()).worker("w1")
    assert held is not None and held.pending > 0, "the victim should hold leases"
    fleet.procs["w1"].kill()
    t_kill = time.monotonic()

    async def victim_gone() -> bool:
        async with FleetView(fleet.url) as fv:
            return (await fv.snapshot()).worker("w1") is None

    took = await until(victim_gone, 20, "the dead worker's entries to be claimed")
    assert took < 10.0, f"claimed after {took:.1f}s: should be ~the 1.5 s heartbeat TTL"
    await until(lambda: ids <= fleet.done(), 40, "every message handled")
    lost = ids - fleet.done()
    assert lost == set()
    async with FleetView(fleet.url) as fv:
        snap = await fv.snapshot()
    assert snap.queue.ready + snap.queue.in_flight + snap.queue.delayed == 0
    assert snap.queue.acked + snap.queue.dead == 600
    counts = Counter(mid for mid, _ in fleet.records())
    duplicates = sum(c - 1 for c in counts.values())
    assert duplicates <= held.pending + 8, "only what the victim held may run twice"
    assert time.monotonic() - t_kill < 60
    codes = fleet.stop_all()
    assert codes["w2"] == 0 and codes["w3"] == 0, fleet.log("w2") + fleet.log("w3")


async def test_workers_ride_out_a_redis_restart(redis_server_factory: Any, tmp_path: Path) -> None:
    """Redis is restarted (same port, append-only) mid-run: workers reconnect with
    backoff and the run completes with 0 lost."""
    server = redis_server_factory()
    fleet = Fleet(f"{server.url}?queue=restart", tmp_path)
    try:
        for name in ("r1", "r2"):
            fleet.spawn(name, delay=0.01, ttl=3.0)
        await until(lambda: has_workers(fleet.url, 2), 20, "two workers")
        ids = await publish(fleet.url, 600)
        await until(lambda: len(fleet.done()) >= 100, 30, "some done")
        server.stop(kill=True)  # a crash: appendfsync always keeps every write
        await asyncio.sleep(1.0)
        server.start()
        await until(lambda: ids <= fleet.done(), 60, "every message handled after restart")
        assert ids - fleet.done() == set()
        for name in ("r1", "r2"):
            assert fleet.procs[name].poll() is None, fleet.log(name)
        assert "retrying with backoff" in fleet.log("r1") + fleet.log("r2")
        codes = fleet.stop_all()
        assert set(codes.values()) == {0}, fleet.log("r1") + fleet.log("r2")
    finally:
        for p in fleet.procs.values():
            if p.poll() is None:
                p.kill()


async def test_sigterm_hands_everything_back_without_using_attempts(fleet: Fleet) -> None:
    """SIGTERM mid-run: the worker finishes or hands back what it holds and exits 0;
    another worker finishes the run; nothing lost, no attempt wasted."""
    fleet.spawn("t1", "--prefetch", "8", delay=0.05, concurrency=2)
    await until(lambda: has_workers(fleet.url, 1), 20, "the worker")
    ids = await publish(fleet.url, 120)
    await until(lambda: len(fleet.done()) >= 20, 30, "some done")
    fleet.procs["t1"].send_signal(signal.SIGTERM)
    assert fleet.wait_exit("t1") == 0, fleet.log("t1")
    async with FleetView(fleet.url) as fv:
        snap = await fv.snapshot()
    assert snap.worker("t1") is None  # it left the group
    assert snap.queue.in_flight == 0
    fleet.spawn("t2", delay=0.0)
    await until(lambda: ids <= fleet.done(), 30, "the rest handled by t2")
    assert max(a for _, a in fleet.records()) == 1, "handing back must not use an attempt"
    fleet.stop_all()


async def _audit_status(url: str, nonce: str) -> tuple[str, str]:
    from ccdash.fleet.connect import connect

    client, keys = await connect(url)
    try:
        for _eid, f in await client.xrevrange(keys.audit):
            if f.get(b"nonce", b"").decode() == nonce:
                return f[b"status"].decode(), f[b"detail"].decode()
    finally:
        await client.aclose()
    return "", ""


async def test_signed_kill_reaches_the_right_worker_and_forgeries_are_refused(fleet: Fleet) -> None:
    """A signed kill crashes that consumer of that worker only (it is replaced); an
    unsigned, wrongly signed, stale or replayed command is refused and audited."""
    audit = fleet.tmp / "audit.jsonl"
    fleet.spawn("k1", "--audit-log", str(audit), concurrency=3)
    fleet.spawn("k2", concurrency=3)
    await until(lambda: has_workers(fleet.url, 2), 20, "two workers")
    res = await send_command(fleet.url, SECRET, "k1", "kill", consumer="c2", wait=30)
    assert (res.status, res.worker) == ("accepted", "k1"), res
    assert "killed c2" in res.detail

    async def replaced() -> bool:
        async with FleetView(fleet.url) as fv:
            snap = await fv.snapshot()
        k1, k2 = snap.worker("k1"), snap.worker("k2")
        assert k1 is not None and k2 is not None
        return {c.id for c in k1.consumers} == {"c1", "c3", "c4"} and {
            c.id for c in k2.consumers
        } == {"c1", "c2", "c3"}

    await until(replaced, 10, "c2 of k1 replaced, k2 untouched")
    assert '"action": "kill"' in audit.read_text()

    from ccdash.fleet.connect import connect

    client, keys = await connect(fleet.url)
    try:
        [(_, accepted)] = await client.xrevrange(keys.control("k1"), count=1)
        now = float((await client.time())[0])
    finally:
        await client.aclose()
    # Each forgery has a nonce of its own: the audit is looked up by nonce, and one
    # shared by the unsigned and the wrongly signed command (as it was) found the
    # unsigned one's refusal while the worker had not yet audited the other (a
    # loaded machine: "unsigned" != "bad signature").
    unsigned = encode_command(keys.queue, "k1", "kill", {"consumer": "c1"}, now)
    forged = encode_command(keys.queue, "k1", "kill", {"consumer": "c1"}, now)
    stale = encode_command(keys.queue, "k1", "kill", {"consumer": "c1"}, now - 120)
    attempts = {
        "replayed": dict(accepted),
        "unsigned": {"c": unsigned},
        "bad signature": {"c": forged, "s": sign(b"wrong secret", forged)},
        "stale": {"c": stale, "s": sign(SECRET.encode(), stale)},
    }
    import json

    for reason, fields in attempts.items():
        nonce = json.loads(fields[b"c"] if b"c" in fields else fields["c"])["nonce"]
        await send_raw(fleet.url, "k1", fields)

        async def audited(nonce: str = nonce) -> bool:
            return (await _audit_status(fleet.url, nonce))[0] == "refused"

        await until(audited, 10, f"the {reason} command refused")
        status, detail = await _audit_status(fleet.url, nonce)  # the newest, the refusal
        assert detail == reason, (reason, status, detail)
    assert "refused control command (unsigned)" in fleet.log("k1")
    async with FleetView(fleet.url) as fv:
        k1 = (await fv.snapshot()).worker("k1")
    assert k1 is not None and "c1" in {c.id for c in k1.consumers}, "c1 was never killed"
    res = await send_command(fleet.url, SECRET, "k2", "scale", n=1, wait=30)
    assert res.status == "accepted" and res.detail == "concurrency 1"
    res = await send_command(fleet.url, SECRET, "k2", "stop", wait=30)
    assert res.status == "accepted"
    assert fleet.wait_exit("k2") == 0, fleet.log("k2")
    assert fleet.stop_all()["k1"] == 0


def test_worker_usage_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    """Bad URL scheme, bad handler, unreachable Redis: one line, exit 2, no password."""
    from support.redis_fixtures import free_port

    from ccdash.worker import main

    cases = [
        (["--broker", "memory", "--handler", "support.fleet_handlers:record"], "redis://"),
        (
            [
                "--broker",
                f"redis://u:pw-secret@127.0.0.1:{free_port()}/0?timeout=0.3",
                "--handler",
                "support.fleet_handlers:record",
            ],
            "cannot reach Redis",
        ),
        (["--broker", "redis://127.0.0.1:1/0", "--handler", "nope_module:x"], "cannot import"),
    ]
    for argv, needle in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "ccdash.worker", *argv],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr and "pw-secret" not in proc.stderr
        assert "Traceback" not in proc.stderr
    assert main is not None


async def test_drain_command_finishes_in_flight_work_and_exits(fleet: Fleet) -> None:
    """`drain`: the worker stops taking work, finishes what is in progress, hands the
    rest back and exits 0; another worker finishes the run with nothing lost."""
    fleet.spawn("d1", "--prefetch", "4", delay=0.2, concurrency=2)
    await until(lambda: has_workers(fleet.url, 1), 20, "the worker")
    ids = await publish(fleet.url, 40)
    await until(lambda: len(fleet.done()) >= 4, 20, "some done")
    res = await send_command(fleet.url, SECRET, "d1", "drain")
    assert (res.status, res.detail) == ("accepted", "draining")
    assert fleet.wait_exit("d1") == 0, fleet.log("d1")
    drained = fleet.done()
    fleet.spawn("d2", delay=0.0)
    await until(lambda: ids <= fleet.done(), 30, "the rest handled by d2")
    assert len(drained) < len(ids)
    counts = Counter(mid for mid, _ in fleet.records())
    assert max(counts.values()) == 1, "a drained worker's work is not done twice"
    fleet.stop_all()


def test_a_broker_failing_under_a_worker_mid_run_is_one_line_exit_1(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The engine's task group fails with a BrokerError (its broker could not store a
    write): one 'ccdash: error:' line and exit 1, as the demo does, not a traceback of
    the exception group."""
    from ccdash import worker
    from ccdash.brokers.base import BrokerError
    from ccdash.fleet.runtime import WorkerRuntime

    async def run(self: WorkerRuntime) -> int:
        raise ExceptionGroup("engine", [BrokerError("write failed: disk I/O error")])

    monkeypatch.setattr(WorkerRuntime, "run", run)
    argv = ["--broker", redis_server.url, "--handler", "support.fleet_handlers:record"]
    assert worker.main(argv) == 1
    err = capsys.readouterr().err
    assert err == "ccdash: error: the worker stopped: write failed: disk I/O error\n", err
