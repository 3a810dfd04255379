"""`ccdash replay`: the dashboard driven by a recording, through Pilot (no real time)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
from pathlib import Path
from typing import Any

import pytest
from support.dashboard import advance, log_text, make_app, quit_app, rows, running, screen_text

from ccdash.clock import FakeClock
from ccdash.headless.run import run_demo
from ccdash.headless.views import PlainView
from ccdash.record import Recorder, Recording, parse_recording
from ccdash.scenario import load_scenario
from ccdash.tui.consumer_table import ConsumerTable
from ccdash.tui.drill_report import DrillReport
from ccdash.tui.keys import KEYS
from ccdash.tui.replay import ReplayApp
from ccdash.tui.replay_keys import SHOWN_KEYS, VIEW_ACTIONS

SIZE = (160, 48)


def _recorded_failover_drill() -> bytes:
    """A seeded, fake-clocked failover drill recorded in memory (the same bytes each time
    but for the header's creation time, which is not shown)."""

    async def run() -> bytes:
        clock = FakeClock()
        recorder = Recorder.in_memory()
        task = asyncio.ensure_future(
            run_demo(
                load_scenario("failover-drill"),
                PlainView(io.StringIO()),
                clock=clock,
                duration=8,
                seed=5,
                recorder=recorder,
            )
        )
        await clock.run_until(task.done, step=0.05)
        await task
        out = recorder.out
        assert isinstance(out, io.BytesIO)
        return out.getvalue()

    # Its own loop in its own thread: the callers may be inside a running loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


# A failover drill recorded once by `_recorded_failover_drill` and kept, so these tests
# (and the snapshots) change only when the replay does, not when the engine's timing
# does; and a format-1 file written by this release stays readable by later ones.
GOLDEN = Path(__file__).parent / "data" / "failover-drill.rec"


def recording() -> Recording:
    """The failover drill's recording, decoded afresh (a Recording caches as it is read)."""
    return parse_recording(GOLDEN.read_bytes(), "failover.rec")


async def test_a_fresh_recording_replays_like_the_kept_one() -> None:
    """Today's engine recorded afresh: the replay opens it and finds its first drill."""
    fresh = parse_recording(_recorded_failover_drill())
    app = ReplayApp(fresh, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await _open(app, pilot)
        await pilot.press("d")
        first = next(e for e in fresh.timeline() if e.kind.startswith("drill-"))
        assert app.player.position == first.at


def replay_app() -> ReplayApp:
    return ReplayApp(recording(), live=False)


async def _open(app: ReplayApp, pilot: Any) -> None:
    await app.engine_ready.wait()
    await pilot.pause()


async def test_replay_keys_play_pause_step_seek_and_jump_to_the_next_drill() -> None:
    """space plays and pauses, . steps a frame, ] seeks 10 s, d and D find drills, j jumps."""
    app = replay_app()
    rec = app.player.recording
    async with app.run_test(size=SIZE) as pilot:
        await _open(app, pilot)
        assert app.player.position == rec.start and not app.player.playing
        await pilot.press("space")
        assert app.player.playing
        app.player.advance(1.0)  # what the playback timer does each tick, on wall time
        await pilot.press("space")
        assert not app.player.playing and app.player.position == pytest.approx(rec.start + 1)
        index = app.player.index
        await pilot.press("full_stop")
        assert app.player.index == index + 1
        await pilot.press("greater_than_sign", "greater_than_sign")
        assert app.player.speed == 4.0
        await pilot.press("d")
        first = next(e for e in rec.timeline() if e.kind.startswith("drill-"))
        assert app.player.position == first.at
        await pilot.pause()
        assert first.message in log_text(app)
        drills = rows(app.query_one(DrillReport))
        assert drills and next(iter(drills.values()))[0] == "kill busiest"
        await pilot.press("d")
        assert app.player.position > first.at
        await pilot.press("D")
        assert app.player.position == first.at
        await pilot.press("right_square_bracket")
        assert app.player.position == pytest.approx(min(rec.end, first.at + 10))
        await pilot.press("j", *"2.5", "enter")
        assert app.player.position == pytest.approx(rec.t0 + 2.5)
        await pilot.pause()
        assert "t+2.5s of" in screen_text(app)


async def test_a_seek_back_shows_the_panes_as_they_stood_then() -> None:
    """After the end, jumping to the start: counts, consumers and log are the early ones."""
    app = replay_app()
    rec = app.player.recording
    async with app.run_test(size=SIZE) as pilot:
        await _open(app, pilot)
        await pilot.press("dollar_sign")
        await pilot.pause()
        late = rec.snapshot(len(rec.frame_at) - 1)
        assert f"published {late.published}" in screen_text(app)
        await pilot.press("circumflex_accent")
        await pilot.pause()
        assert "published 0" in screen_text(app)
        assert "drill-" not in log_text(app)
        assert set(rows(app.query_one(ConsumerTable))) == {"c1", "c2", "c3", "c4", "c5"}


async def test_no_key_that_would_act_on_an_engine_is_offered_or_run() -> None:
    """Only view and replay keys are bound, shown or in the palette; k does nothing."""
    app = replay_app()
    async with app.run_test(size=SIZE) as pilot:
        await _open(app, pilot)
        before = rows(app.query_one(ConsumerTable))
        await pilot.press("h", "plus", "r", "p", "z", "x", "u")
        await pilot.pause()
        assert rows(app.query_one(ConsumerTable)) == before
        assert "hung" not in log_text(app) and app.player.position == app.player.recording.start
        mutating = {k.action.split("(")[0] for k in KEYS} - VIEW_ACTIONS
        assert all(app.check_action(a, ()) is False for a in mutating)
        bound = {b.action.split("(")[0] for b in app.BINDINGS if hasattr(b, "action")}
        assert not bound & mutating
        footer = screen_text(app).splitlines()[-1]
        assert "kill" not in footer and "space play/pause" in footer
        titles = [k.title for k in SHOWN_KEYS]
        assert "replay: next drill" in titles and not any("kill" in t for t in titles)


async def test_a_dashboard_session_is_recorded_with_its_operator_actions() -> None:
    """Recorded live: frames, events and the operator's kill; replayed, `o` finds the kill."""
    recorder = Recorder.in_memory(meta={"source": "dashboard", "title": "test"})
    app = make_app(rate=10, recorder=recorder)
    async with running(app) as pilot:
        await advance(app, pilot, 1.0)
        await pilot.press("down", "k")
        await advance(app, pilot, 1.0)
        await quit_app(app, pilot)
    out = recorder.out
    assert isinstance(out, io.BytesIO) and recorder.closed
    rec = parse_recording(out.getvalue())
    assert not rec.cut_short and len(rec.frame_at) >= 3
    assert [o.message for o in rec.operator][0].startswith("killed c2")
    assert any(e.kind == "consumer-failed" for e in rec.events)
    replay = ReplayApp(rec, live=False)
    async with replay.run_test(size=SIZE) as pilot:
        await _open(replay, pilot)
        await pilot.press("c")
        await pilot.pause()
        assert replay.player.position == rec.operator[0].at
        assert "killed c2" in log_text(replay)
        assert rows(replay.query_one(ConsumerTable))["c2"][1] == "failed"


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_replay_frame(snap_compare: Any, size: tuple[int, int]) -> None:
    """The replay paused just after the hang drill was judged."""

    async def to_the_hang(pilot: Any) -> None:
        app = pilot.app
        await _open(app, pilot)
        await pilot.press("d", "d", "d")
        await pilot.pause()

    assert snap_compare(replay_app(), terminal_size=size, run_before=to_the_hang)


async def test_panes_work_as_live_filter_find_and_a_dead_letter() -> None:
    """In a replay, / filters the consumers, : finds a dead letter, Enter opens it (its
    body left out of the recording, and said so)."""
    from ccdash.tui.message_detail import MessageDetail

    app = replay_app()
    rec = app.player.recording
    async with app.run_test(size=SIZE) as pilot:
        await _open(app, pilot)
        await pilot.press("dollar_sign")
        await pilot.pause()
        app.consumers.focus()
        await pilot.press("slash", "c", "2", "enter")
        assert app.query_one(ConsumerTable).row_keys() == ["c2"]
        dead = rec.snapshot(len(rec.frame_at) - 1).dead_letters
        assert dead, "the failover drill's poison messages are dead-lettered"
        await pilot.press("colon", *dead[0].message_id, "enter")
        await pilot.pause()
        assert isinstance(app.screen, MessageDetail)
        assert "body not recorded" in screen_text(app)
