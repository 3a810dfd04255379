"""A real terminal for end-to-end tests: a tmux session on its own server socket,
read and typed into as a person would (`Terminal`, the `terminal` fixture), and the
installed `ccdash` console script to run in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
CCDASH = Path(sys.executable).with_name("ccdash")

# A test that drives a terminal: skipped where tmux is missing.
needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (.ci/run installs it)")


class Terminal:
    """One tmux session on its own server socket, 160x48 unless told."""

    def __init__(self, command: str, size: tuple[int, int] = (160, 48)) -> None:
        self.socket = f"ccdash-e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
        # The terminal decides the size: a COLUMNS/LINES inherited from the test runner
        # (pytest-xdist sets 80x24) would override what tmux gives the dashboard.
        for name in ("TMUX", "COLUMNS", "LINES"):
            env.pop(name, None)
        self.tmux(
            "new-session",
            "-d",
            "-x",
            str(size[0]),
            "-y",
            str(size[1]),
            "-s",
            "dash",
            command,
            env=env,
        )

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        assert TMUX is not None
        out = subprocess.run(
            [TMUX, "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            env=env,
            check=False,
        )
        return out.stdout

    def screen(self) -> str:
        """What the terminal shows now."""
        return self.tmux("capture-pane", "-p", "-t", "dash")

    def press(self, key: str) -> None:
        self.tmux("send-keys", "-t", "dash", key)

    def wait_for(self, what: str, ok: Callable[[str], bool], deadline: float = 30.0) -> str:
        """Poll the screen until `ok(screen)`; fail with the last screen after `deadline` s."""
        end = time.monotonic() + deadline
        screen = ""
        while time.monotonic() < end:
            screen = self.screen()
            if ok(screen):
                return screen
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}; the screen was:\n{screen}")

    def close(self) -> None:
        self.tmux("kill-server")
        tmpdir = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (tmpdir / self.socket).unlink(missing_ok=True)  # tmux may leave the socket file


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    """Factory: `terminal(command, size=(160, 48))` -> a Terminal running `command`;
    every one is closed at the end."""
    made: list[Terminal] = []

    def start(command: str, size: tuple[int, int] = (160, 48)) -> Terminal:
        made.append(Terminal(command, size))
        return made[-1]

    yield start
    for t in made:
        t.close()
