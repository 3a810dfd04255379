"""Recording a run and reading it back: the round trip, the file's safety, and damage."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import io
import json
import math
import os
import threading
import tracemalloc
import zlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from ccdash.clock import FakeClock
from ccdash.engine.snapshot import ConsumerView, Event, Snapshot
from ccdash.headless.run import run_demo
from ccdash.headless.views import PlainView
from ccdash.record import Recorder, RecordingError, parse_recording, read_recording
from ccdash.record.codec import SnapshotEncoder, diff_order
from ccdash.record.decode import NOT_RECORDED, DecodedState, apply_order
from ccdash.scenario import Workload, load_scenario


async def drive(clock: FakeClock, coro: Coroutine[Any, Any, Any]) -> Any:
    """Run `coro` to the end, moving the fake clock as it waits."""
    task = asyncio.ensure_future(coro)
    await clock.run_until(task.done, step=0.05)
    return await task


async def recorded_demo(
    scenario: str = "failover-drill", duration: float = 8.0, **kw: Any
) -> tuple[dict[str, Any], Recorder, list[Any]]:
    """A seeded fake-clock headless run recorded in memory; (report, recorder, run events)."""
    clock = FakeClock()
    recorder = Recorder.in_memory(**kw)
    seen: list[Any] = []

    class Collect(PlainView):
        def event(self, ev: Any) -> None:
            seen.append(ev)

    report = await drive(
        clock,
        run_demo(
            load_scenario(scenario),
            Collect(io.StringIO()),
            clock=clock,
            duration=duration,
            seed=5,
            recorder=recorder,
        ),
    )
    return report, recorder, seen


def data_of(recorder: Recorder) -> bytes:
    """The recorded bytes of an in-memory recorder."""
    out = recorder.out
    assert isinstance(out, io.BytesIO)
    return out.getvalue()


async def test_a_recorded_run_replays_the_same_report_event_by_event() -> None:
    """Seeded run recorded, read back: the same report and the same events, in order."""
    report, recorder, seen = await recorded_demo()
    rec = parse_recording(data_of(recorder))
    assert rec.report == report and report["drills"]
    assert not rec.cut_short
    live = [(ev.kind, ev.message) for ev in seen]
    replayed = [(ev.kind, ev.message) for ev in rec.events]
    # The view hears the run from its start to its end; the recording also has the
    # engine starting before and stopping after.
    i = replayed.index(live[0])
    assert replayed[i : i + len(live)] == live
    assert replayed[0][0] == "consumer-started" and replayed[-1][0] in (
        "engine-stopped",
        "consumer-stopped",
    )
    assert sum(k.startswith("drill-") for k, _ in live) >= 4


def _close(a: Any, b: Any, path: str = "") -> None:
    """Equal, with floats within a hundredth (rates are stored to two decimals)."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), path
        for f in dataclasses.fields(a):
            _close(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, tuple | list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, abs_tol=0.01), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


async def test_each_frame_decodes_to_the_snapshot_it_was_taken_from() -> None:
    """Frame by frame (sampling off), the decoded snapshot equals the live one."""
    scenario = load_scenario("failover-drill")
    clock = FakeClock()
    engine = scenario.make_engine(clock=clock, seed=3)
    workload = Workload(scenario, engine, seed=3)
    enc, state, checked = SnapshotEncoder(bodies=True, detail_every=0.0), DecodedState(), 0

    async def run() -> None:
        nonlocal checked
        async with engine:
            run = asyncio.ensure_future(workload.run(6.0))
            try:
                while not run.done():
                    live = engine.snapshot(max_leases=60, max_dead=200)
                    state.apply(json.loads(json.dumps(enc.encode(live))))
                    _close(live, state.snapshot())
                    checked += 1
                    await clock.sleep(0.25)
            finally:
                workload.stop("test over")
                await run

    await drive(clock, run())
    assert checked > 20


def test_every_snapshot_field_is_recorded() -> None:
    """A field added to Snapshot or ConsumerView without recording it fails here."""
    from ccdash.record import codec

    assert {f.name for f in dataclasses.fields(Snapshot)} == codec.SNAPSHOT_FIELDS
    assert {f.name for f in dataclasses.fields(ConsumerView)} == codec.CONSUMER_FIELDS


def test_key_order_diff_round_trips() -> None:
    """Runs of the previous order and new keys rebuild the new order exactly."""
    prev = [f"m{i}" for i in range(10)]
    for new in (prev, ["n1", *prev[:9]], prev[3:] + ["x"], ["m5", "m1", "m2", "y", "m9"], []):
        diff = diff_order({k: i for i, k in enumerate(prev)}, new)
        assert apply_order(prev, diff) == new
    assert diff_order({k: i for i, k in enumerate(prev)}, ["n1", *prev[:9]]) == ["n1", [0, 9]]


def test_a_killed_run_leaves_a_file_readable_up_to_its_last_record(tmp_path: Path) -> None:
    """A stream cut anywhere after its first frame reads back, marked cut short."""
    out = io.BytesIO()
    recorder = Recorder(out, close_out=False)
    t = 100.0
    for i in range(12):
        recorder.on_event(Event(i + 1, t + i, "consumer-failed", f"c{i} failed"))
        recorder.frame(_tiny_snapshot(t + i, published=i))
    full = out.getvalue()  # no finish(): as if the process was killed here
    rec = parse_recording(full)
    assert rec.cut_short and len(rec.frame_at) == 12 and rec.report is None
    assert rec.snapshot(11).published == 11
    for cut in (len(full) - 1, len(full) - 7, len(full) * 2 // 3):
        part = parse_recording(full[:cut])
        assert part.cut_short and 1 <= len(part.frame_at) <= 12
        n = len(part.frame_at)
        assert part.snapshot(n - 1).published == n - 1


def _tiny_snapshot(at: float, published: int = 0) -> Snapshot:
    from ccdash.engine.snapshot import QueueView

    return Snapshot(
        at=at,
        queue=QueueView(0, 0, 0, 0, 0, None),
        consumers=(),
        leases=(),
        dead_letters=(),
        alerts=(),
        balancer="round-robin",
        published=published,
        acked=0,
        dead_lettered=0,
        redelivered=0,
        failovers=0,
        publish_rate=0.0,
        ack_rate=0.0,
        latency_p50=None,
        latency_p99=None,
        loop_lag=0.0,
        paused=False,
        autoscale=False,
        desired_consumers=1,
        broker="memory",
    )


def test_recording_file_is_owner_only_under_any_umask(tmp_path: Path) -> None:
    """Created 0600 with umask 0, and an existing world-readable file is tightened."""
    old = os.umask(0)
    try:
        fresh = tmp_path / "fresh.rec"
        Recorder.create(str(fresh)).finish(_tiny_snapshot(1.0))
        existing = tmp_path / "existing.rec"
        existing.write_bytes(b"old")
        existing.chmod(0o644)
        Recorder.create(str(existing)).finish(_tiny_snapshot(1.0))
    finally:
        os.umask(old)
    assert fresh.stat().st_mode & 0o777 == 0o600
    assert existing.stat().st_mode & 0o777 == 0o600


async def test_message_bodies_are_left_out_unless_asked_for() -> None:
    """Dead letters' bodies: absent from the file by default, kept with bodies=True."""
    for bodies in (False, True):
        _, recorder, _ = await recorded_demo(bodies=bodies)
        raw = zlib.decompress(data_of(recorder), 31)
        rec = parse_recording(data_of(recorder))
        dead = rec.snapshot(len(rec.frame_at) - 1).dead_letters
        assert dead, "the failover drill's poison messages end in the DLQ"
        if bodies:
            assert all(d.body is not NOT_RECORDED for d in dead)
            assert b'"poison":true' in raw
        else:
            assert all(d.body is NOT_RECORDED for d in dead)
            assert b'"poison":true' not in raw


def _write(records: list[dict[str, Any]], *, finish: bool = True) -> bytes:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    return z.compress(data) + (z.flush() if finish else z.flush(zlib.Z_SYNC_FLUSH))


def _deep(records: list[dict[str, Any]], at: int) -> bytes:
    """The recording with record `at` replaced by one holding lists nested 100,000 deep
    (no JSON encoder writes that; a hostile file can)."""
    lines = [json.dumps(r).encode() + b"\n" for r in records]
    lines[at] = b'{"t":"e","at":10.0,"k":"x","m":"m","f":' + b"[" * 100_000 + b"]" * 100_000
    lines[at] += b"}\n"
    return gzip.compress(b"".join(lines))


def _valid_records() -> list[dict[str, Any]]:
    recorder = Recorder.in_memory()
    recorder.on_event(Event(1, 10.0, "consumer-failed", "c1 failed"))
    recorder.frame(_tiny_snapshot(10.0))
    recorder.frame(_tiny_snapshot(10.25, published=3))
    recorder.finish()
    raw = zlib.decompress(data_of(recorder), 31)
    return [json.loads(line) for line in raw.splitlines()]


def test_hostile_strings_in_a_recording_come_back_sanitised() -> None:
    """An OSC 52 sequence and a bidi override in a recording reach nothing raw."""
    records = _valid_records()
    for r in records:
        if r["t"] == "e":
            r["m"] = "\x1b]52;c;ZXZpbA==\x07 owned \u202e"
            r["k"] = "consumer-\x1b[2J"
    rec = parse_recording(_write(records))
    ev = rec.events[0]
    assert "\x1b" not in ev.message + ev.kind and "\u202e" not in ev.message
    assert "\\x1b]52" in ev.message and "\\u202e" in ev.message


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda recs: _write(recs)[:15], "truncated recording"),
        (lambda recs: _write(recs[:1], finish=False), "holds no frame"),
        (lambda recs: _write(recs)[:20] + b"\xff" * 40 + _write(recs)[60:], "corrupt recording"),
        (
            lambda recs: _write([*recs[:2], {"t": "s", "at": "soon"}, *recs[2:]]),
            "corrupt recording: line 3",
        ),
        (
            lambda recs: _write([recs[0], {**recs[2], "v": {**recs[2]["v"], "published": "many"}}]),
            "corrupt recording: line 2",
        ),
        (lambda recs: _write([{**recs[0], "v": 2}, *recs[1:]]), "written by a newer ccdash"),
        (lambda recs: b"plain text, not gzip\n", "not a ccdash recording"),
        (lambda recs: gzip.compress(b'{"t":"h","format":"other"}\n'), "not a ccdash recording"),
        (lambda recs: _write(recs) + b"trailing", "garbage after the end"),
        (lambda recs: _deep(recs, 0), "corrupt recording: line 1"),
        (lambda recs: _deep(recs, 2), "corrupt recording: line 3"),
    ],
)
def test_a_damaged_file_is_one_recording_error(damage: Any, says: str) -> None:
    """Truncated, corrupt, newer-version or foreign files: RecordingError naming why."""
    with pytest.raises(RecordingError) as err:
        parse_recording(damage(_valid_records()), "run.rec")
    text = str(err.value)
    assert says in text and text.startswith("run.rec: ") and "\n" not in text


def test_a_zip_bomb_is_refused_before_it_is_inflated() -> None:
    """A small file that inflates a thousandfold (a hostile recording: 100 KiB -> 96 MiB,
    one record) is refused while inflating, not after gigabytes have been allocated."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    header = json.dumps(_valid_records()[0]).encode() + b"\n"
    bomb = z.compress(header + b'{"t":"e","m":"' + b"A" * (96 * 1024**2) + b'"}\n') + z.flush()
    assert len(bomb) < 200 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(RecordingError, match="zip bomb") as err:
            parse_recording(bomb, "run.rec")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value).startswith("run.rec: ") and "\n" not in str(err.value)
    assert peak < 64 * 1024**2  # it stopped well before inflating the whole record


def test_a_missing_file_is_one_recording_error(tmp_path: Path) -> None:
    """No such file, or a directory: RecordingError, not an OSError."""
    for path, says in ((tmp_path / "nope.rec", "no such file"), (tmp_path, "is a directory")):
        with pytest.raises(RecordingError, match=says):
            read_recording(str(path))


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file larger than the limit is refused as too large from its size alone; it was
    read into memory up to the limit first (2 GiB) and then called corrupt."""
    import ccdash.record.reader as reader_module

    limit = 64 * 1024**2
    monkeypatch.setattr(reader_module, "MAX_BYTES", limit)
    path = tmp_path / "run.rec"
    with open(path, "wb") as fh:  # sparse: no disk spent
        fh.write(b"\x1f\x8b\x08\x00")
        fh.truncate(limit + 1)
    tracemalloc.start()
    try:
        with pytest.raises(RecordingError) as err:
            read_recording(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value).startswith(f"{path}: recording too large"), str(err.value)
    assert "\n" not in str(err.value)
    assert peak < limit // 4  # nothing of it was read


def test_a_fifo_or_a_device_is_refused_without_waiting_or_reading(tmp_path: Path) -> None:
    """`ccdash replay FIFO` waited for a writer for ever; `replay /dev/zero` read 2 GiB
    (15 s) before its verdict. Both are 'not a regular file' at once."""
    fifo = tmp_path / "run.rec"
    os.mkfifo(fifo)
    said: list[str] = []

    def read() -> None:
        try:
            read_recording(str(fifo))
        except RecordingError as exc:
            said.append(str(exc))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)  # a bound for a hang, not a timing target
    if reader.is_alive():  # waiting for a writer: be one, so the thread ends
        with open(fifo, "wb"):
            pass
        reader.join(5)
    assert said and "not a regular file" in said[0]
    with pytest.raises(RecordingError, match="not a regular file"):
        read_recording(os.devnull)


def test_a_run_refused_before_it_starts_leaves_an_old_recording_as_it_was(
    tmp_path: Path,
) -> None:
    """--record naming an existing file, on a run refused before it starts (a broker that
    cannot be opened; a worker name in use): the old file is left as it was. It was
    replaced by an empty recording, so re-running a command with a typo lost the last
    run's recording."""
    from ccdash import cli

    old = tmp_path / "old.rec"
    old.write_bytes(b"precious")
    old.chmod(0o600)
    bad = f"sqlite:///{tmp_path}/no-such-dir/q.db"
    assert cli.main(["--demo", "--record", str(old), "--broker", bad]) == 2
    assert old.read_bytes() == b"precious"
    Recorder.create(str(old)).finish()  # no frame: nothing was recorded
    assert old.read_bytes() == b"precious"
    unopened = tmp_path / "never.rec"
    Recorder.create(str(unopened)).finish()
    assert not unopened.exists()


def test_the_recorder_keeps_the_run_going_when_the_disk_fails() -> None:
    """A write error stops the recording (error says why), never raises into the run."""

    class Full(io.BytesIO):
        def write(self, b: Any) -> int:
            raise OSError(28, "No space left on device")

    recorder = Recorder(Full(), path="run.rec")
    recorder.frame(_tiny_snapshot(1.0))
    recorder.frame(_tiny_snapshot(1.25))
    recorder.finish()
    assert recorder.error == "writing run.rec failed: No space left on device"


def test_the_recorder_stays_out_of_the_engine_and_plotting_out_of_the_recorder() -> None:
    """The engine never loads the recorder; the recorder loads no UI, scenario or matplotlib."""
    import subprocess
    import sys

    code = (
        "import json, sys, ccdash.engine, ccdash.brokers; a = set(sys.modules);"
        "import ccdash.record, ccdash.record.player; b = set(sys.modules);"
        "print(json.dumps([m for m in a if m.startswith('ccdash.record')]));"
        "print(json.dumps(sorted({m.split('.')[0] if not m.startswith('ccdash') else "
        "'.'.join(m.split('.')[:2]) for m in b - a})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert json.loads(out[0]) == []
    loaded = set(json.loads(out[1]))
    assert "ccdash.record" in loaded
    assert not loaded & {"matplotlib", "textual", "rich", "ccdash.scenario", "ccdash.tui"}


def test_a_frame_that_cannot_be_recorded_stops_the_recording_not_the_run() -> None:
    """An encoding failure ends the recording with a reason; later events are not kept."""
    import dataclasses as dc

    recorder = Recorder.in_memory(path="run.rec")
    recorder.frame(_tiny_snapshot(1.0))
    broken = dc.replace(_tiny_snapshot(2.5), consumers=(object(),))  # type: ignore[arg-type]
    recorder.frame(broken)
    assert recorder.closed and recorder.error is not None
    assert recorder.error.startswith("recording a frame failed: AttributeError")
    recorder.on_event(Event(1, 2.0, "consumer-failed", "c1 failed"))
    recorder.frame(_tiny_snapshot(3.0))
    recorder.finish()
    assert recorder.frames == 1 and not recorder._events
    assert len(parse_recording(data_of(recorder)).frame_at) == 1


def test_a_title_that_reads_as_mathtext_is_plotted_literally(tmp_path: Path) -> None:
    """A scenario named '$\\frac{1}{$' (text from a scenario file or a recording) is drawn
    as written; matplotlib's mathtext parser failed the whole picture with a traceback."""
    pytest.importorskip("matplotlib")
    from ccdash.record.plot import plot_recording

    records = _valid_records()
    records[0]["scenario"] = "cost $\\frac{1}{$ and $\\nocommand$"
    rec = parse_recording(_write(records), "run.rec")
    out = tmp_path / "run.svg"
    plot_recording(rec, str(out))
    assert "cost $\\frac{1}{$ and $\\nocommand$" in out.read_text()
    assert out.stat().st_mode & 0o777 == 0o600
