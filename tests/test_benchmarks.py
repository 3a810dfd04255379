"""The queue benchmark still runs: a smoke test, with no timing assertions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bench(script: str, *args: str, timeout: float) -> str:
    """Run `benchmarks/<script> args...`; it must exit 0. Returns what it printed."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_queue_ops_quick_run_prints_its_figures() -> None:
    """`benchmarks/queue_ops.py --quick` exits 0 and prints the ratio and the other figures."""
    out = bench("queue_ops.py", "--quick", timeout=100)
    assert re.search(r"ratio receive\+ack / awaited put\+get: \d+\.\d\d", out)
    assert re.search(r"reap expiring 1,000: median \d+\.\d\d ms", out)
    assert re.search(r"per in-flight lease, beyond payload: +\d+ bytes", out)


@pytest.mark.bench
def test_bench_instructions_counts_both_sides() -> None:
    """benchmarks/bench_instructions.py counts the floor and the engine under valgrind
    and prints instructions per message and their ratio."""
    out = bench("bench_instructions.py", "--messages", "500", "--prefetch", "32", timeout=110)
    floor = re.search(r"floor \(asyncio.Queue, 4 consumers\): ([\d,]+) instructions/message", out)
    engine = re.search(r"engine prefetch=32: ([\d,]+) instructions/message, ratio (\d\.\d+)", out)
    assert floor and engine, out
    f, e = (int(m.group(1).replace(",", "")) for m in (floor, engine))
    assert f > 0 and e > 0
    assert abs(float(engine.group(2)) - f / e) < 0.001


def test_compare_smoke_run_checks_exactly_once_for_every_in_process_system() -> None:
    """benchmarks/compare.py with a tiny N prints a consume rate and ratio per system."""
    out = bench(
        "compare.py",
        *("--messages", "300", "--rounds", "1"),
        *("--no-redis", "--no-sqlite", "--no-instructions"),
        timeout=60,
    )
    for name in ("floor", "mini-lease", "memory p1", "memory p32"):  # a ratio may reach 100+
        assert re.search(rf"^{name} +[\d,]+ +[\d,]+ +[\d,]+\.\d{{3}}", out, re.M), out


@pytest.mark.bench
def test_compare_and_scaling_full_quick_runs() -> None:
    """compare.py on every broker with instruction counts, and scaling.py --quick,
    print their tables."""
    out = bench(
        "compare.py",
        *("--messages", "1000", "--instr-messages", "500", "--rounds", "1"),
        timeout=300,
    )
    assert "raw-xackN" in out and "x mini-lease" in out
    out = bench("scaling.py", "--quick", timeout=300)
    for title in ("consumers:", "leases held (memory)", "leases held 9 s", "under load", "backlog"):
        assert title in out


@pytest.mark.bench
def test_redis_server_cost_per_message_is_at_most_twice_the_raw_loop() -> None:
    """Counted under callgrind in one run, redis-server spends at most 2x the
    instructions per message on ccdash (publish, fetch, ack) that it spends on the
    raw Streams loop (XADD, XREADGROUP COUNT 32, one XACK per batch) (#14)."""
    out = bench(
        "compare.py",
        *("--redis-instructions-only", "--redis-instr-messages", "4000"),
        timeout=600,
    )
    if "nothing counted" in out or "not counted" in out:
        pytest.skip(out.strip())
    found = re.search(r"^redis p32 +[\d,]+  x raw-xackN (\d+\.\d\d)", out, re.M)
    assert found, out
    assert float(found.group(1)) <= 2.0, out


@pytest.mark.bench
def test_latency_quick_run_prints_both_sides_and_their_ratio() -> None:
    """benchmarks/latency.py --quick times publish -> handler start for ccdash and the raw
    Streams loop on a private redis-server and prints p50/p95/p99 of each and the ratio."""
    out = bench("latency.py", "--quick", timeout=120)
    if "no redis-server" in out:
        pytest.skip(out.strip())
    for side in ("ccdash", "raw"):
        assert re.search(rf"^{side} +1 +\d+\.\d{{3}} +\d+\.\d{{3}} +\d+\.\d{{3}}", out, re.M), out
    assert re.search(r"x raw \(medians of runs\): p50 \d+\.\d\d", out), out
