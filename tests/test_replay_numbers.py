"""Numbers a hostile or damaged recording may hold that no recorder writes: NaN,
Infinity, 1e999 (a float literal too big for a float) and integers hundreds of digits
long. Python's json reads them all; each is one RecordingError naming the line, never
a dashboard that dies with a traceback at its first frame."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
from test_record import _valid_records

from ccdash.record import RecordingError, parse_recording


def _file(records: list[dict[str, Any]], swap: dict[int, bytes]) -> bytes:
    lines = [json.dumps(r).encode() for r in records]
    for i, text in swap.items():
        lines[i] = text
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    return z.compress(b"\n".join(lines) + b"\n") + z.flush()


def _frame_index(records: list[dict[str, Any]]) -> int:
    return next(i for i, r in enumerate(records) if r["t"] == "s")


@pytest.mark.parametrize(
    "number",
    [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 400],
    ids=["nan", "inf", "-inf", "1e999", "400-digits"],
)
@pytest.mark.parametrize("where", ["frame time", "frame value", "header"])
def test_a_number_no_recorder_writes_is_a_corrupt_line(number: bytes, where: str) -> None:
    """NaN, Infinity, 1e999 or a 400-digit integer as a frame time, a frame's value or
    the header's start time: `corrupt recording: line N`, one line."""
    records = _valid_records()
    i = 0 if where == "header" else _frame_index(records)
    text = json.dumps(records[i]).encode()
    key = {"frame time": b'"at": ', "frame value": b'"published": ', "header": b'"t0": '}[where]
    start = text.index(key) + len(key)
    end = start + len(text[start:].split(b",", 1)[0].split(b"}", 1)[0])
    line = text[:start] + number + text[end:]
    with pytest.raises(RecordingError) as err:
        parse_recording(_file(records, {i: line}), "run.rec")
    message = str(err.value)
    assert message.startswith(f"run.rec: corrupt recording: line {i + 1}"), message
    assert "\n" not in message


def test_big_integers_a_run_can_hold_still_replay() -> None:
    """A body or seed of 30 digits (a dead letter kept with --record-bodies, a 128-bit
    id) is an integer a recording may hold: read back, not refused as damage."""
    records = _valid_records()
    records[0]["seed"] = 10**29
    event = next(r for r in records if r["t"] == "e")
    event["f"] = {"order": 2**100}
    rec = parse_recording(_file(records, {}), "run.rec")
    assert rec.header["seed"] == 10**29


async def test_a_dead_letter_body_with_a_huge_integer_replays(tmp_path: Any) -> None:
    """A body ccdash accepted, {"account": 10**400}, dead-lettered and recorded with
    --record-bodies, replays with its body as published: the reader's refusal of
    400-digit numbers is for counts and times, not what a message carries (it said
    `corrupt recording: line 3: an integer of 401 digits`)."""
    from ccdash import Delivery, Engine, EngineConfig
    from ccdash.record import Recorder, read_recording

    async def fails(d: Delivery) -> None:
        raise ValueError("no")

    body = {"account": 10**400}
    path = str(tmp_path / "run.rec")
    recorder = Recorder.create(path, bodies=True)
    async with Engine(EngineConfig(consumers=1, max_attempts=1), handler=fails) as engine:
        await engine.publish(body)
        await engine.join(timeout=10)
        recorder.frame(engine.snapshot())
        recorder.finish(engine.snapshot())
    assert recorder.error is None
    rec = read_recording(path)
    dead = rec.snapshot(len(rec.frame_at) - 1).dead_letters
    assert [d.body for d in dead] == [body]


def test_a_scenario_seed_is_bounded_like_the_command_lines() -> None:
    """`[scenario] seed` takes what `--seed` takes, 0 to 2^63-1 (it took -1 and 2^70)."""
    from ccdash.scenario import ScenarioError, load_scenario

    for seed in ("-1", str(2**63), str(2**70)):
        with pytest.raises(ScenarioError, match="scenario.seed"):
            load_scenario_text(f"[scenario]\nseed = {seed}\n", load_scenario)
    assert load_scenario_text(f"[scenario]\nseed = {2**63 - 1}\n", load_scenario).seed == 2**63 - 1


def load_scenario_text(text: str, load: Any) -> Any:
    """A scenario read from `text` (through a file, as --scenario reads it)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.toml"
        path.write_text(text)
        return load(str(path))
