"""The recording in the engine's and the workload's place: what the dashboard reads of
them (`snapshot`, `clock`, `add_listener`, `config`; the drill records; the panes' state),
answered from a `Player` at the replay position."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ccdash.brokers.base import DeadLetter
from ccdash.engine.snapshot import Event, Snapshot
from ccdash.record.player import Player, RecordedConfig
from ccdash.tui.feed import ScreenState


class RecordedEngine:
    """What the dashboard reads of an engine, answered from the recording."""

    def __init__(self, player: Player) -> None:
        self.player = player
        self.clock = player
        self.config: RecordedConfig = player.config
        self.leftover = 0

    def snapshot(self, *, max_leases: int = 200, max_dead: int = 200) -> Snapshot:
        """The recorded frame at the replay position."""
        return self.player.snapshot(max_leases=max_leases, max_dead=max_dead)

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Events reach `fn` as the replay plays through them."""
        self.player.add_listener(fn)


class ReplayFeed:
    """The panes' state at the replay position; `:` finds a message in that frame."""

    def __init__(self, player: Player) -> None:
        self.player = player

    def read(self) -> ScreenState:
        """The recorded frame, drill records and loss count at the position."""
        pl = self.player
        return ScreenState(pl.snapshot(max_leases=60, max_dead=200), pl.drill_results(), pl.lost())

    def locate(self, mid: str) -> DeadLetter | str:
        """Where message `mid` was at the replay position, as far as the frame shows."""
        snap = self.player.snapshot()
        for d in snap.dead_letters:
            if d.message_id == mid:
                return d
        for lease in snap.leases:
            if lease.message_id == mid:
                return (
                    f"{mid}: in flight with {lease.consumer_id}, attempt {lease.attempt}, "
                    f"lease {max(0.0, lease.expires_in):.1f}s left (at this point)"
                )
        return (
            f"{mid}: not in this frame (the recording keeps the dead letters and the "
            "60 leases due soonest, not every queued or acked message)"
        )


class RecordedRun:
    """What the dashboard reads of a workload: the drill records at the replay position."""

    def __init__(self, player: Player) -> None:
        self.player = player

    @property
    def drill_results(self) -> list[dict[str, Any]]:
        """The drill records as they stood."""
        return self.player.drill_results()


__all__ = ["RecordedEngine", "RecordedRun", "ReplayFeed"]
