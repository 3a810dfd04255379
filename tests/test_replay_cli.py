"""`--record`, `--plot` and `ccdash replay` through the installed console script."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.polling import wait_until

from ccdash.record import read_recording

CCDASH = str(Path(sys.executable).parent / "ccdash")


def ccdash(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real `ccdash` and wait for it."""
    return subprocess.run([CCDASH, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess[str], says: str) -> None:
    """Exit 2 with exactly one `ccdash: error:` line naming the problem; no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ccdash: error: "), proc.stderr
    assert says in lines[0] and "Traceback" not in proc.stderr


# The tests on the one recorded run go to one xdist worker (addopts: --dist loadgroup),
# so the run (a 4 s demo with a plot: ~4 CPU-s) is made once, not once a worker.
on_the_recorded_run = pytest.mark.xdist_group("replay-cli-recorded-run")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One recorded, plotted demo run: (its directory, what it printed)."""
    d = tmp_path_factory.mktemp("run")
    proc = ccdash(
        "--demo",
        "--scenario",
        "failover-drill",
        "--duration",
        "4",
        "--seed",
        "5",
        "--record",
        "run.rec",
        "--plot",
        "run.svg",
        "--json",
        "run.json",
        cwd=d,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return d, proc.stdout


@on_the_recorded_run
def test_the_report_names_its_recording_and_plot(recorded: tuple[Path, str]) -> None:
    """The JSON report and the text report name the files the run wrote; the files are 0600
    (the plot names consumers and drills, like the recording)."""
    d, out = recorded
    report = json.loads((d / "run.json").read_text())
    assert report["recording"] == "run.rec" and report["plot"] == "run.svg"
    assert "recording      run.rec" in out and "plot           run.svg" in out
    for name in ("run.rec", "run.svg", "run.json"):
        assert (d / name).stat().st_mode & 0o777 == 0o600, name
    svg = (d / "run.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "kill busiest" in svg and "p99" in svg


@on_the_recorded_run
def test_replay_report_prints_what_the_live_run_printed(recorded: tuple[Path, str]) -> None:
    """`ccdash replay FILE --report`: the live run's report, verbatim, and its exit status."""
    d, out = recorded
    proc = ccdash("replay", "run.rec", "--report", "--json", "again.json", cwd=d)
    assert proc.returncode == 0, proc.stderr
    live = out[out.index("ccdash demo report:") :]
    assert proc.stdout == live
    assert json.loads((d / "again.json").read_text()) == json.loads((d / "run.json").read_text())


@on_the_recorded_run
def test_replay_plot_draws_the_recorded_timeline(recorded: tuple[Path, str]) -> None:
    """`ccdash replay FILE --plot F.svg` draws the same picture the live run drew."""
    d, _ = recorded
    proc = ccdash("replay", "run.rec", "--plot", "again.svg", cwd=d)
    assert proc.returncode == 0, proc.stderr
    assert (d / "again.svg").read_bytes() == (d / "run.svg").read_bytes()


@on_the_recorded_run
def test_replay_without_a_terminal_says_how_to_use_it(recorded: tuple[Path, str]) -> None:
    """No TTY: one line pointing at --report and --plot."""
    d, _ = recorded
    one_line_error(ccdash("replay", "run.rec", cwd=d), "--report")


@on_the_recorded_run
@pytest.mark.parametrize("mode", [["--report"], ["--plot", "x.svg"], []])
def test_a_corrupt_recording_is_one_line_exit_2(
    recorded: tuple[Path, str], mode: list[str], tmp_path: Path
) -> None:
    """Bytes damaged in the middle of the file: one line, exit 2, in every mode."""
    raw = bytearray((recorded[0] / "run.rec").read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 64] = b"\x00" * 64
    (tmp_path / "bad.rec").write_bytes(bytes(raw))
    one_line_error(ccdash("replay", "bad.rec", *mode, cwd=tmp_path), "corrupt recording")


@on_the_recorded_run
def test_a_truncated_recording_has_no_report(recorded: tuple[Path, str], tmp_path: Path) -> None:
    """Cut in half: --report is one line (exit 2); the part before the cut still plots."""
    raw = (recorded[0] / "run.rec").read_bytes()
    (tmp_path / "cut.rec").write_bytes(raw[: len(raw) // 2])
    one_line_error(ccdash("replay", "cut.rec", "--report", cwd=tmp_path), "truncated recording")
    assert ccdash("replay", "cut.rec", "--plot", "cut.svg", cwd=tmp_path).returncode == 0
    one_line_error(ccdash("replay", "missing.rec", "--report", cwd=tmp_path), "no such file")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--demo", "--record-bodies"], "--record-bodies applies to --record"),
        (["--plot", "x.svg"], "--plot applies to headless runs"),
        (["--demo", "--plot", "x.txt"], ".svg, .png or .pdf"),
        (["--demo", "--record", "no/such/dir/run.rec"], "--record: directory"),
        (["replay", "x.rec", "--json", "r.json"], "--json applies to --report"),
    ],
)
def test_bad_record_and_plot_flags_are_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    """Flags that cannot apply: one line, exit 2, before anything runs."""
    one_line_error(ccdash(*args, cwd=tmp_path), says)


@pytest.mark.slow
def test_a_killed_run_leaves_a_replayable_recording(tmp_path: Path) -> None:
    """SIGKILL mid-run: the file reads up to its last record; no report to print."""
    proc = subprocess.Popen(
        [CCDASH, "--demo", "--duration", "60", "--record", "run.rec"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rec = tmp_path / "run.rec"
    try:

        def recording() -> None:
            assert proc.poll() is None, "ccdash exited before the recording grew"

        wait_until(
            lambda: rec.exists() and rec.stat().st_size > 2000,
            30,
            "the recording past 2000 bytes",
            guard=recording,
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    replay = read_recording(str(rec))
    assert replay.cut_short and replay.report is None and len(replay.frame_at) > 4
    one_line_error(ccdash("replay", "run.rec", "--report", cwd=tmp_path), "truncated recording")


async def test_a_worker_records_its_run(redis_server: Any, tmp_path: Path) -> None:
    """`ccdash worker --record FILE`: frames and events of the worker, 0600, replayable."""
    import uuid

    from support.fleet import Fleet, has_workers, publish
    from support.polling import until

    fleet = Fleet(f"{redis_server.url}?queue=rec-{uuid.uuid4().hex[:8]}", tmp_path)
    try:
        fleet.spawn("w1", "--record", str(tmp_path / "w1.rec"), concurrency=2)
        await until(lambda: has_workers(fleet.url, 1), 20, "the worker")
        ids = await publish(fleet.url, 40)
        await until(lambda: ids <= fleet.done(), 30, "the messages handled")
        assert fleet.stop_all() == {"w1": 0}, fleet.log("w1")
    finally:
        for p in fleet.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    path = tmp_path / "w1.rec"
    assert path.stat().st_mode & 0o777 == 0o600
    rec = read_recording(str(path))
    assert rec.header["source"] == "worker" and rec.header["title"] == "w1"
    assert not rec.cut_short and len(rec.frame_at) >= 2
    assert rec.snapshot(len(rec.frame_at) - 1).acked >= 40
    assert any(e.kind == "consumer-started" for e in rec.events)


@on_the_recorded_run
def test_a_recording_from_a_newer_ccdash_is_one_line_exit_2(
    recorded: tuple[Path, str], tmp_path: Path
) -> None:
    """Format version 2 in the header: one line saying to upgrade, exit 2, in every mode."""
    import gzip

    lines = gzip.decompress((recorded[0] / "run.rec").read_bytes()).splitlines(keepends=True)
    header = json.loads(lines[0])
    header["v"] = 2
    (tmp_path / "new.rec").write_bytes(
        gzip.compress(json.dumps(header).encode() + b"\n" + b"".join(lines[1:]))
    )
    for mode in (["--report"], ["--plot", "x.svg"], []):
        one_line_error(
            ccdash("replay", "new.rec", *mode, cwd=tmp_path),
            "written by a newer ccdash (recording format version 2",
        )


@on_the_recorded_run
def test_long_strings_in_a_recorded_report_are_bounded(
    recorded: tuple[Path, str], tmp_path: Path
) -> None:
    """A recording is outside input: `replay --report` prints its strings sanitised and
    cut to a bound (100 kB in a drill's detail, a check's name, a failover's consumer, a
    scaling step or the seed is not printed whole)."""
    import gzip

    lines = gzip.decompress((recorded[0] / "run.rec").read_bytes()).splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith(b'{"t":"r"'))
    record = json.loads(lines[at])
    report = record["report"]
    long = "\x1b]52;c;QUJD\x07" + "A" * 100_000
    report["drills"][0]["detail"] = long
    report["drills"][0]["name"] = long
    report["slo"][0]["name"] = long
    report["slo"][0]["text"] = long
    report["slo"][0]["actual"] = long
    report["failovers"][0]["consumer"] = long
    report["scaling_events"] = [{"at": 1.0, "source": "x", "from": long, "to": 2, "reason": ""}]
    report["seed"] = long
    lines[at] = json.dumps(record).encode() + b"\n"
    (tmp_path / "long.rec").write_bytes(gzip.compress(b"".join(lines)))
    proc = ccdash("replay", "long.rec", "--report", cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert "A" * 1000 not in proc.stdout
    assert max(map(len, proc.stdout.splitlines())) <= 1000, max(map(len, proc.stdout.splitlines()))
