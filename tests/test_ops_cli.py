"""Operations through the headless runner and the command line: /metrics during a run,
the JSON-lines log of a failover drill, alert rules in scenario files, black-friday."""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.http import http_get

from ccdash import cli
from ccdash.clock import FakeClock
from ccdash.engine import Event
from ccdash.headless.run import run_demo
from ccdash.headless.views import PlainView
from ccdash.ops.logfile import JsonLogWriter
from ccdash.scenario import Scenario, Workload, load_scenario, parse_scenario

CCDASH = str(Path(sys.executable).parent / "ccdash")
METRICS_LINE = re.compile(r"^metrics: http://127\.0\.0\.1:(\d+)/metrics$")

SHORT = """
[scenario]
name = "ops-short"
duration = 3
seed = 5
[engine]
consumers = 3
heartbeat_interval = 0.2
heartbeat_timeout = 0.8
[load]
rate = 60
[handler]
latency = "constant"
ms = 5
[[drills]]
at = 1
action = "burst"
count = 40
[[drills]]
at = 1.5
action = "kill"
target = "busiest"
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples_of(text: str) -> Samples:
    """Every sample of a Prometheus exposition, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


class Watching(PlainView):
    """A plain view that keeps the workload and the notes, for the test to look at."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.workload: Workload | None = None
        self.notes: list[str] = []

    def begin(self, scenario: Scenario, workload: Workload) -> None:
        super().begin(scenario, workload)
        self.workload = workload

    def note(self, text: str) -> None:
        super().note(text)
        self.notes.append(text)


async def finish(clock: FakeClock, task: asyncio.Future[Any]) -> Any:
    """Move the fake clock until the run ends; its report."""
    await clock.run_until(task.done, step=0.05)
    return await task


def start(coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
    """Run `coro` as a task (the fake clock is moved by the test)."""
    return asyncio.ensure_future(coro)


async def test_metrics_during_a_headless_run_match_the_engine_snapshot() -> None:
    """Scraped mid-run (fake clock held still), /metrics parses and its counters and gauges
    equal the engine's snapshot; after the run, the report's totals are at least those."""
    clock = FakeClock()
    view = Watching()
    task = start(run_demo(parse_scenario(SHORT), view, clock=clock, metrics_port=0))
    await clock.run_until(
        lambda: view.workload is not None and view.workload.elapsed() >= 2, step=0.05
    )
    assert view.workload is not None
    [note] = [n for n in view.notes if n.startswith("metrics:")]
    match = METRICS_LINE.match(note)
    assert match, note
    engine = view.workload.engine
    before = engine.snapshot()
    status, body = await http_get(int(match.group(1)))
    snap = engine.snapshot()
    assert status.endswith("200 OK")
    assert (snap.published, snap.acked, snap.queue) == (
        before.published,
        before.acked,
        before.queue,
    )  # nothing moved
    s = samples_of(body)
    assert s[("ccdash_messages_published_total", ())] == snap.published > 40
    assert s[("ccdash_messages_acked_total", ())] == snap.acked > 0
    assert s[("ccdash_messages_dead_lettered_total", ())] == snap.dead_lettered
    assert s[("ccdash_messages_redelivered_total", ())] == snap.redelivered
    assert s[("ccdash_failovers_total", ())] == snap.failovers == 1
    assert s[("ccdash_queue_depth", ())] == snap.queue.depth
    assert s[("ccdash_leases_in_flight", ())] == snap.queue.in_flight
    assert s[("ccdash_dead_letters", ())] == snap.queue.dead
    live = sum(s[("ccdash_consumers", (("state", st),))] for st in ("idle", "processing"))
    assert live == snap.live_consumers
    assert s[("ccdash_handler_duration_seconds_count", ())] >= snap.acked
    report = await finish(clock, task)
    assert report["ok"]
    assert report["engine"]["published"] >= s[("ccdash_messages_published_total", ())]
    assert report["engine"]["acked"] >= s[("ccdash_messages_acked_total", ())]
    with pytest.raises(OSError):  # the server stops with the run
        await http_get(int(match.group(1)))


def test_metrics_from_a_real_demo_process_agree_with_its_report(tmp_path: Path) -> None:
    """`ccdash --demo --metrics-port 0 --log-file F`: prints the port; /metrics on 127.0.0.1
    parses mid-run; its counters never exceed the final report's; the log is JSON lines."""
    (tmp_path / "short.toml").write_text(SHORT)
    proc = subprocess.Popen(
        [
            CCDASH,
            "--demo",
            "--scenario",
            "short.toml",
            "--metrics-port",
            "0",
            "--log-file",
            "ops.log",
            "--json",
            "out.json",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = None
        while True:  # sync points: the port line, then the burst drill (messages exist)
            line = proc.stdout.readline()
            assert line, "the run ended before the burst drill"
            m = METRICS_LINE.match(line.strip())
            if m:
                port = int(m.group(1))
            if "drill burst x40: published 40 messages" in line:
                break
        assert port is not None
        status, body = asyncio.run(http_get(port))
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    assert status.endswith("200 OK")
    s = samples_of(body)
    report = json.loads((tmp_path / "out.json").read_text())
    engine = report["engine"]
    assert 40 <= s[("ccdash_messages_published_total", ())] <= engine["published"]
    assert s[("ccdash_messages_acked_total", ())] <= engine["acked"]
    assert s[("ccdash_messages_dead_lettered_total", ())] <= engine["dead_lettered"]
    assert s[("ccdash_failovers_total", ())] <= engine["failovers"] == 1
    records = [json.loads(line) for line in (tmp_path / "ops.log").read_text().splitlines()]
    kinds = [r["event"] for r in records]
    assert kinds[0] == "consumer-started" and kinds[-1] == "engine-stopped"
    assert {"drill-fired", "drill-pass", "consumer-failed", "consumer-replaced"} <= set(kinds)


async def test_log_file_of_the_failover_drill_has_the_expected_json_lines(tmp_path: Path) -> None:
    """failover-drill with a log file: valid JSON lines with failures, replacements, every
    drill step (fired, then its verdict) and alerts, each with time, level, event, message."""
    path = tmp_path / "ops.log"
    writer = JsonLogWriter(str(path))
    clock = FakeClock()
    try:
        report = await finish(
            clock,
            start(
                run_demo(
                    load_scenario("failover-drill"),
                    PlainView(io.StringIO()),
                    clock=clock,
                    duration=10,
                    listeners=(writer,),
                )
            ),
        )
    finally:
        writer.close()
    assert report["ok"]
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert all({"time", "level", "event", "message", "seq"} <= r.keys() for r in records)
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)
    kinds = [r["event"] for r in records]
    for expected in (
        "engine-started",
        "consumer-failed",
        "consumer-hung",
        "consumer-replaced",
        "dead-lettered",
        "drill-fired",
        "drill-pass",
        "alert-firing",
        "alert-resolved",
        "engine-stopped",
    ):
        assert expected in kinds, expected
    drills = [r for r in records if r["event"].startswith("drill-")]
    fired = [r for r in drills if r["event"] == "drill-fired"]
    assert [r["action"] for r in fired] == ["kill", "hang", "poison", "kill"]
    assert all(r["source"] == "drill" for r in drills)
    assert len([r for r in drills if r["event"] == "drill-pass"]) == 4
    failed = [r for r in records if r["event"] == "consumer-failed"]
    assert len(failed) == 3 and all(r["level"] == "error" and r["consumer"] for r in failed)
    victims = {r["target"] for r in fired if r["action"] in ("kill", "hang")}
    assert victims == {r["consumer"] for r in failed}
    alerts = [r for r in records if r["event"] == "alert-firing"]
    assert any(r["alert"] == "consumer-failed" for r in alerts)


def test_metrics_port_in_use_is_a_one_line_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port something else listens on: exit 2, one line naming the port, no run."""
    (tmp_path / "short.toml").write_text(SHORT)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = cli.main(
            ["--demo", "--scenario", str(tmp_path / "short.toml"), "--metrics-port", str(port)]
        )
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.splitlines() == [err.strip()]
    assert err.startswith(f"ccdash: error: --metrics-port: cannot listen on 127.0.0.1:{port}")


def test_invalid_alert_rule_names_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An alert rule on an unknown metric: exit 2, `FILE:LINE: alerts[N].metric: ...`."""
    path = tmp_path / "alerts.toml"
    path.write_text(
        SHORT + '\n[[alerts]]\nname = "slow"\nmetric = "p99_latncy"\nop = ">"\nthreshold = 0.5\n'
    )
    assert cli.main(["--demo", "--scenario", str(path)]) == 2
    out, err = capsys.readouterr()
    line = SHORT.count("\n") + 4
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith(
        f"ccdash: error: {path}:{line}: alerts[1].metric: unknown metric "
        f"'p99_latncy' (did you mean 'p99_latency'?)"
    )


async def test_black_friday_headless_run_passes_with_the_autoscaler_at_work() -> None:
    """black-friday through the headless runner: PASS, the autoscaler changed the pool
    (from forecasts too), and the report's scaling row says so."""
    clock = FakeClock()
    out = io.StringIO()
    report = await finish(
        clock, start(run_demo(load_scenario("black-friday"), PlainView(out), clock=clock))
    )
    assert report["ok"], [c for c in report["slo"] if not c["ok"]]
    assert len(report["scaling_events"]) > 0
    auto = report["autoscaler"]
    assert auto["changes"] > 0 and auto["reasons"].get("forecast", 0) > 0
    assert re.search(r"scaling\s+\d+\s+autoscaler: \d+ decisions, peak \d+; 2->", out.getvalue())


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a disk that is full)")
def test_a_log_file_that_cannot_be_written_stops_the_log_not_the_run(tmp_path: Path) -> None:
    """--log-file on a full disk: the run goes on and its report is written; one line says
    the log stopped, exit 2 (like an unwritable recording); no traceback."""
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "ccdash", "--demo", "--duration", "1", "--seed", "1"]
        + ["--log-file", "/dev/full", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("ccdash: error: --log-file: ") and "/dev/full" in line
    assert json.loads(out.read_text())["lost"] == 0
    assert "demo report" in proc.stdout


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a disk that is full)")
def test_the_log_writer_never_raises_into_the_engine() -> None:
    """A write error in the JSON-lines log (disk full, I/O error) is kept for the end,
    never raised into the engine that emitted the event; later events are dropped."""
    writer = JsonLogWriter("/dev/full")
    ev = Event(1, 0.0, "consumer-started", "c1 started")
    writer(ev)
    writer(ev)
    writer.close()
    assert writer.error is not None and "No space left on device" in writer.error
