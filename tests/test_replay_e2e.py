"""`ccdash replay` in a real terminal (tmux): the recording of a real run, keys as typed."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from support.terminal import CCDASH, Terminal, needs_tmux

pytestmark = needs_tmux


def test_a_recorded_drill_replays_in_a_terminal(
    terminal: Callable[..., Terminal], tmp_path: Path
) -> None:
    """Record a failover drill; replay it at 80x24: play, pause, jump to a drill, quit 0."""
    rec = tmp_path / "drill.rec"
    run = subprocess.run(
        [
            str(CCDASH),
            "--demo",
            "--scenario",
            "failover-drill",
            "--duration",
            "4",
            "--seed",
            "5",
            "--record",
            str(rec),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    t = terminal(f"{CCDASH} replay {rec}; echo EXIT=$?; sleep 30", size=(80, 24))
    t.wait_for("the replay", lambda s: "REPLAY" in s and "paused" in s and "lost 0" in s)
    t.press("Space")
    t.wait_for("playing", lambda s: "playing" in s)
    t.press("Space")
    t.wait_for("paused again", lambda s: "paused" in s)
    t.press("^")  # back to the start, then the first drill step
    t.press("d")
    t.wait_for("the first drill", lambda s: "kill busiest" in s)
    t.press("q")
    t.wait_for("a clean exit", lambda s: "EXIT=0" in s)
