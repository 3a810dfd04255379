"""The queue benchmark still runs: a smoke test, with no timing assertions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_queue_ops_quick_run_prints_its_figures() -> None:
    """`benchmarks/queue_ops.py --quick` exits 0 and prints the ratio and the other figures."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "queue_ops.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert run.returncode == 0, run.stderr
    assert re.search(r"ratio receive\+ack / awaited put\+get: \d+\.\d\d", run.stdout)
    assert re.search(r"reap expiring 1,000: median \d+\.\d\d ms", run.stdout)
    assert re.search(r"per in-flight lease, beyond payload: +\d+ bytes", run.stdout)


@pytest.mark.bench
def test_bench_instructions_counts_both_sides() -> None:
    """benchmarks/bench_instructions.py counts the floor and the engine under valgrind
    and prints instructions per message and their ratio."""
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_instructions.py"),
            "--messages",
            "500",
            "--prefetch",
            "32",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, run.stderr
    floor = re.search(
        r"floor \(asyncio.Queue, 4 consumers\): ([\d,]+) instructions/message", run.stdout
    )
    engine = re.search(
        r"engine prefetch=32: ([\d,]+) instructions/message, ratio (\d\.\d+)", run.stdout
    )
    assert floor and engine, run.stdout
    f, e = (int(m.group(1).replace(",", "")) for m in (floor, engine))
    assert f > 0 and e > 0
    assert abs(float(engine.group(2)) - f / e) < 0.001


def test_compare_smoke_run_checks_exactly_once_for_every_in_process_system() -> None:
    """benchmarks/compare.py with a tiny N prints a consume rate and ratio per system."""
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "compare.py"),
            "--messages",
            "300",
            "--rounds",
            "1",
            "--no-redis",
            "--no-sqlite",
            "--no-instructions",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    for name in ("floor", "mini-lease", "memory p1", "memory p32"):
        assert re.search(rf"^{name} +[\d,]+ +[\d,]+ +\d\.\d{{3}}", run.stdout, re.M), run.stdout


@pytest.mark.bench
def test_compare_and_scaling_full_quick_runs() -> None:
    """compare.py on every broker with instruction counts, and scaling.py --quick,
    print their tables."""
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "compare.py"),
            "--messages",
            "1000",
            "--instr-messages",
            "500",
            "--rounds",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "raw-xackN" in run.stdout and "x mini-lease" in run.stdout
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    for title in ("consumers:", "leases held (memory)", "leases held 9 s", "backlog"):
        assert title in run.stdout
