"""`ccdash bench` and the engine benchmarks run and report their figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_reports_floor_engine_and_ratio(tmp_path: Path) -> None:
    """A small `ccdash bench` run writes both rates and their ratio for prefetch 1 and 32."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ccdash.bench",
            "--messages",
            "3000",
            "--rounds",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert [r["prefetch"] for r in data["rows"]] == [1, 32]
    for row in data["rows"]:
        assert row["floor_per_s"] > 0 and row["engine_per_s"] > 0
        assert abs(row["ratio"] - row["engine_per_s"] / row["floor_per_s"]) < 1e-9
    assert "ratio=" in proc.stdout


def test_bench_rejects_bad_numbers() -> None:
    """A non-positive --messages is a usage error (exit 2, one line, no traceback)."""
    proc = subprocess.run(
        [sys.executable, "-m", "ccdash.bench", "--messages", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--messages: expected an integer from 1 to 100000000, got '0'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_snapshot_benchmark_runs() -> None:
    """benchmarks/engine_snapshot.py --quick measures a snapshot with leases held."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "engine_snapshot.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "snapshot with 20 consumers and 1000 leases" in proc.stdout


def test_bench_with_publish_batches_on_sqlite(tmp_path: Path) -> None:
    """--publish-batch publishes with publish_many; a durable broker run loses nothing."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ccdash.bench",
            "--broker",
            f"sqlite:///{tmp_path}/b.db",
            "--messages",
            "2000",
            "--rounds",
            "1",
            "--prefetch",
            "32",
            "--publish-batch",
            "50",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["publish_batch"] == 50 and data["rows"][0]["engine_per_s"] > 0
    assert "publish_many x50" in proc.stdout
