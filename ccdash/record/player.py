"""Playing a recording: a position on its timeline, moved by time, steps and jumps.

The dashboard reads the player as it reads a live engine: `snapshot()` for
the frame at the position, listeners for the events the position passes while
playing. A jump (seek, step back, next drill...) is not playing through: the
listeners of `on_jump` hear of it and rebuild what they show from
`recent_events()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ccdash.engine import ALERT_EVENTS, DRILL_EVENTS, EventKind
from ccdash.engine.snapshot import Event, Snapshot
from ccdash.record.kinds import OPERATOR_EVENTS
from ccdash.record.reader import Recording

SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)

# What "next ..." jumps to: a mark kind and the event kinds that are such marks.
MARKS: dict[str, Callable[[Event], bool]] = {
    "event": lambda e: True,
    "drill": lambda e: e.kind in DRILL_EVENTS,
    "alert": lambda e: e.kind in ALERT_EVENTS,
    "operator": lambda e: e.kind in OPERATOR_EVENTS,
    "failover": lambda e: e.kind in (EventKind.CONSUMER_FAILED, EventKind.CONSUMER_REPLACED),
}


@dataclass(frozen=True, slots=True)
class RecordedConfig:
    """The engine settings a replayed dashboard shows (from the recording's header)."""

    heartbeat_timeout: float
    max_attempts: int
    min_consumers: int
    max_consumers: int


class Player:
    """A position on a recording's timeline, with play / pause / speed / step / seek."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.position = recording.start
        self.playing = False
        self.speed = 1.0
        self._listeners: list[Callable[[Event], None]] = []
        self._jump_listeners: list[Callable[[], None]] = []
        h = recording.header
        self.config = RecordedConfig(
            heartbeat_timeout=_num(h.get("heartbeat_timeout"), 3.0),
            max_attempts=int(_num(h.get("max_attempts"), 5)),
            min_consumers=int(_num(h.get("min_consumers"), 0)),
            max_consumers=int(_num(h.get("max_consumers"), 0)),
        )

    # -- what the dashboard reads -------------------------------------------------

    def now(self) -> float:
        """The replay time (the recorded engine's clock)."""
        return self.position

    def snapshot(self, *, max_leases: int = 200, max_dead: int = 200) -> Snapshot:
        """The recorded frame at the position."""
        snap = self.recording.snapshot(self.index)
        if len(snap.leases) > max_leases or len(snap.dead_letters) > max_dead:
            snap = replace(
                snap, leases=snap.leases[:max_leases], dead_letters=snap.dead_letters[:max_dead]
            )
        return snap

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Call `fn` with each event the position passes while playing or stepping on."""
        self._listeners.append(fn)

    def on_jump(self, fn: Callable[[], None]) -> None:
        """Call `fn` after every jump (anything but moving forward through time)."""
        self._jump_listeners.append(fn)

    def drill_results(self) -> list[dict[str, Any]]:
        """The drill records as they stood at the position."""
        return self.recording.drills_at(self.position)

    def lost(self) -> int | None:
        """The loss checker's count as recorded at the position (None: not recorded)."""
        lost = self.recording.state(self.index).top.get("lost")
        return lost if isinstance(lost, int) else None

    def recent_events(self, limit: int = 200) -> list[Event]:
        """The last `limit` events at or before the position."""
        return self.recording.events_until(self.position, limit)

    @property
    def index(self) -> int:
        """The frame shown: the last one at or before the position."""
        return self.recording.frame_index(self.position)

    @property
    def at_end(self) -> bool:
        """Whether the position is at the last frame."""
        return self.position >= self.recording.end

    # -- moving -----------------------------------------------------------------------

    def advance(self, wall_seconds: float) -> None:
        """Move on by `wall_seconds` x speed while playing; stop at the end."""
        if self.playing:
            self._forward(self.position + wall_seconds * self.speed)
            if self.at_end:
                self.playing = False

    def toggle(self) -> None:
        """Play or pause (playing at the end starts again from the beginning)."""
        if not self.playing and self.at_end:
            self.seek(self.recording.start)
        self.playing = not self.playing

    def change_speed(self, steps: int) -> float:
        """One step faster (+1) or slower (-1) along SPEEDS; returns the new speed."""
        i = SPEEDS.index(self.speed) if self.speed in SPEEDS else 1
        self.speed = SPEEDS[max(0, min(len(SPEEDS) - 1, i + steps))]
        return self.speed

    def step(self, frames: int) -> None:
        """Pause and move `frames` frames on (or back, if negative)."""
        self.playing = False
        at = self.recording.frame_at
        i = max(0, min(len(at) - 1, self.index + frames))
        if frames > 0:
            self._forward(at[i])
        else:
            self.seek(at[i])

    def seek(self, at: float) -> None:
        """Jump to clock time `at` (clamped to the recording)."""
        self.position = max(self.recording.start, min(self.recording.end, at))
        for fn in self._jump_listeners:
            fn()

    def seek_offset(self, seconds: float) -> None:
        """Jump to `seconds` after the recording began."""
        self.seek(self.recording.t0 + seconds)

    def next_mark(self, kind: str, direction: int) -> Event | None:
        """Jump to the next (+1) or previous (-1) event of a kind in MARKS; None if none."""
        match = MARKS[kind]
        timeline = self.recording.timeline()
        if direction > 0:
            found = next((e for e in timeline if e.at > self.position and match(e)), None)
        else:
            found = next(
                (e for e in reversed(timeline) if e.at < self.position - 1e-9 and match(e)), None
            )
        if found is not None:
            self.playing = False
            self.seek(found.at)
        return found

    def _forward(self, to: float) -> None:
        to = min(self.recording.end, to)
        passed = self.recording.events_between(self.position, to)
        self.position = to
        for ev in passed:
            for fn in self._listeners:
                fn(ev)


def _num(x: Any, default: float) -> float:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else default


__all__ = ["MARKS", "SPEEDS", "Player", "RecordedConfig"]
