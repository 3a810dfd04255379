"""`ccdash replay FILE`: the dashboard, read-only, driven by a recording.

The same app and panes as live; what differs is where they read from. The
dashboard reads an engine through three things only (`snapshot`, `clock`,
`add_listener`, plus the settings in `config`): `RecordedEngine` answers
them from a `Player`, and `RecordedRun` gives the drill records as they stood.
Every key that would act on an engine is unbound and refused (`check_action`),
so it is neither offered in the footer, the help or the palette, nor run.
The stand-ins live in `replay_feed`, the key table in `replay_keys`.
"""

from __future__ import annotations

import re
import time
from typing import Any, cast

from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from ccdash.engine import Engine
from ccdash.record.player import Player
from ccdash.record.reader import Recording
from ccdash.tui.app import REFRESH_INTERVAL, DashboardApp
from ccdash.tui.help_screen import HelpScreen
from ccdash.tui.keys import MUTATING_ACTIONS
from ccdash.tui.log_pane import LogPane
from ccdash.tui.prompt import Prompt
from ccdash.tui.queue_pane import HISTORY, QueuePane
from ccdash.tui.replay_bar import ReplayBar
from ccdash.tui.replay_feed import RecordedEngine, RecordedRun, ReplayFeed
from ccdash.tui.replay_keys import REPLAY_ACTIONS, SHOWN_KEYS

LOG_BACKFILL = 200  # events shown in the log after a jump


def parse_offset(text: str) -> float | None:
    """`75`, `75.5` or `1:15` as seconds; None if it is none of these."""
    m = re.fullmatch(r"\s*(?:(\d+):)?(\d+(?:\.\d*)?)\s*", text)
    if not m:
        return None
    minutes, seconds = m.groups()
    return int(minutes or 0) * 60 + float(seconds)


class ReplayApp(DashboardApp, inherit_bindings=False):
    """The dashboard over a recording; see the module docstring."""

    PALETTE_KEYS = ()  # its keys reach the palette through get_system_commands below

    BINDINGS = [
        Binding(k.key, k.action, k.short, show=k.footer, key_display=k.display, id=k.id)
        for k in SHOWN_KEYS
    ] + [
        Binding("ctrl+c", "quit", "quit", show=False, id="app.interrupt"),
        Binding("ctrl+q", "quit", "quit", show=False, priority=True, id="app.ctrl_q"),
    ]

    def __init__(
        self,
        recording: Recording,
        *,
        theme: str | None = None,
        live: bool = True,
        refresh_interval: float = REFRESH_INTERVAL,
        handle_signals: bool = False,
    ) -> None:
        """`live=False`: no playback timer (tests move the player and call refresh_now).
        `handle_signals`: SIGTERM and SIGHUP leave as `q` does (see DashboardApp)."""
        self.player = Player(recording)
        h = recording.header
        title = str(h.get("title") or h.get("scenario") or "recording")
        # The engine's place is taken by the recording: only its read API is used
        # (check_action refuses every command that would need more).
        super().__init__(
            cast(Engine, RecordedEngine(self.player)),
            RecordedRun(self.player),
            theme=theme,
            title=title,
            clock=self.player,
            live=False,
            start_load=False,
            refresh_interval=refresh_interval,
            feed=ReplayFeed(self.player),
            read_only=True,
            handle_signals=handle_signals,
        )
        self.t0 = recording.t0
        self.replay_live = live
        self._wall = time.monotonic()
        self.player.on_jump(self._jumped)

    def compose(self) -> Any:
        """The replay bar, then the dashboard as it is live."""
        yield ReplayBar(self.palette, self.player, id="replay")
        yield from super().compose()

    async def _run_engine(self) -> int:
        """No engine: show the first frame, play on a timer until quit."""
        self.engine_ready.set()
        self._jumped()
        if self.replay_live:
            self.set_interval(self.refresh_interval, self._play_tick, name="playback")
        await self._stop.wait()
        return 0

    def _play_tick(self) -> None:
        now = time.monotonic()
        elapsed, self._wall = now - self._wall, now
        if self.player.playing:
            self.player.advance(elapsed)
            self.refresh_now()

    def refresh_now(self) -> None:
        """The panes from the frame at the position; the replay bar too."""
        super().refresh_now()
        if self.engine_ready.is_set():
            self.query_one(ReplayBar).update_from()

    def _jumped(self) -> None:
        """After a jump: the log and the depth sparkline as they stood at the new position."""
        if not self.engine_ready.is_set():
            return
        self.query_one(LogPane).clear()
        self._events.clear()
        self._events.extend(self.player.recent_events(LOG_BACKFILL))
        rec, pos = self.player.recording, self.player.position
        samples = [
            float(rec.series.depth[rec.frame_index(pos - s)]) for s in range(HISTORY - 1, -1, -1)
        ]
        self.query_one(QueuePane).reset_history(samples)
        self.refresh_now()

    # -- keys ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Nothing that would act on an engine; replay keys only on the dashboard itself."""
        if action in MUTATING_ACTIONS:
            return False
        if action in REPLAY_ACTIONS:
            main = getattr(self, "main_screen", None)
            return main is not None and self.screen is main and not main.has_class("-tiny")
        return super().check_action(action, parameters)

    def action_play(self) -> None:
        """Play or pause."""
        self.player.toggle()
        self._wall = time.monotonic()
        self.refresh_now()

    def action_step(self, frames: int) -> None:
        """One frame on or back (paused)."""
        self.player.step(frames)
        self.refresh_now()

    def action_speed(self, steps: int) -> None:
        """Faster or slower."""
        self.player.change_speed(steps)
        self.refresh_now()

    def action_seek_by(self, seconds: float) -> None:
        """Jump by `seconds` (clamped to the recording)."""
        self.player.seek(self.player.position + seconds)

    def action_mark(self, kind: str, direction: int) -> None:
        """Jump to the next or previous event of a kind; say so if there is none."""
        found = self.player.next_mark(kind, direction)
        if found is None:
            where = "after" if direction > 0 else "before"
            self.notify(f"no {kind} {where} this point", severity="warning", timeout=3)

    def action_jump(self) -> None:
        """Ask for a time and jump there."""
        total = self.player.recording.end - self.player.recording.t0

        def check(text: str) -> str | None:
            at = parse_offset(text)
            if at is None or at > total + 1e-9:
                return f"seconds (or m:ss) from 0 to {total:.1f}"
            return None

        def done(text: str | None) -> None:
            if text is not None and (at := parse_offset(text)) is not None:
                self.player.playing = False
                self.player.seek_offset(at)

        now = self.player.position - self.player.recording.t0
        self.push_screen(
            Prompt(
                f"Jump to what time? (seconds since the start, 0 to {total:.1f})",
                f"{now:.1f}",
                check,
            ),
            done,
        )

    async def action_quit(self) -> None:
        """Leave the replay (nothing to stop)."""
        if not self.quitting:
            self.quitting = True
            self._stop.set()
            if self.engine_worker is None or self.engine_worker.is_finished:
                self._exit_with_code()

    def action_help(self) -> None:
        """The keys of the replay."""
        self.push_screen(HelpScreen(self.palette, keys=SHOWN_KEYS))

    def get_system_commands(self, screen: Screen[Any]) -> Any:
        """The replay's keys in the command palette (no command that acts on an engine)."""
        for k in SHOWN_KEYS:
            yield SystemCommand(k.title, k.help, _runner(self, k.action))
        yield from super(DashboardApp, self).get_system_commands(screen)


def _runner(app: ReplayApp, action: str) -> Any:
    async def run() -> None:
        await app.run_action(action)

    return run


def run_replay(recording: Recording, *, theme: str | None = None) -> int:
    """Open the replay dashboard on a terminal; returns the exit code."""
    from ccdash.tui.launch import prepare_terminal

    app = ReplayApp(recording, theme=theme, handle_signals=True)
    prepare_terminal()
    code = app.run()
    return code if isinstance(code, int) else 0


__all__ = ["ReplayApp", "parse_offset", "run_replay"]
