"""ccdash where the output cannot take every character: an ASCII locale (LC_ALL=C with
Python's UTF-8 mode off, PYTHONUTF8=0). A character the stream cannot encode is printed
as an escape; it never ends the run, and the report files are written."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.terminal import Terminal, needs_tmux

CCDASH = str(Path(sys.executable).parent / "ccdash")
ASCII = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}
ASCII.pop("PYTHONIOENCODING", None)


def test_a_demo_in_an_ascii_locale_prints_its_report_and_writes_its_json(tmp_path: Path) -> None:
    """`ccdash --demo --json` with ASCII stdout: the text report (its '·' escaped), the JSON
    written, no traceback. It died on the report's first '·' (UnicodeEncodeError, exit 1)
    before the JSON was written: the run's evidence lost."""
    proc = subprocess.run(
        [CCDASH, "--demo", "--duration", "2", "--seed", "1", "--json", "out.json"],
        cwd=tmp_path,
        env=ASCII,
        capture_output=True,
        timeout=120,
    )
    assert b"Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert b"result: PASS" in proc.stdout
    assert (tmp_path / "out.json").exists()
    proc.stdout.decode("ascii")  # what reached the stream is ASCII: escapes, not raw bytes


def test_a_replay_report_in_an_ascii_locale_is_printed(tmp_path: Path) -> None:
    """`ccdash replay FILE --report` with ASCII stdout: the report, no traceback."""
    env = {**os.environ}
    subprocess.run(
        [CCDASH, "--demo", "--duration", "1", "--seed", "1", "--record", "run.rec"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    proc = subprocess.run(
        [CCDASH, "replay", "run.rec", "--report"],
        cwd=tmp_path,
        env=ASCII,
        capture_output=True,
        timeout=120,
    )
    assert b"Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode in (0, 1) and b"ccdash demo report" in proc.stdout


@needs_tmux
@pytest.mark.parametrize("command", ["dashboard", "replay"])
def test_the_dashboard_in_an_ascii_locale_draws_its_boxes(
    terminal: Callable[..., Terminal], tmp_path: Path, command: str
) -> None:
    """The dashboard (live or replaying) with LC_ALL=C and PYTHONUTF8=0: its borders and
    bars are drawn (the terminal gets UTF-8, as Python assumes for a C locale, PEP 538),
    not the escapes an ASCII stream made of them ('\\u256d\\u2500 Queue \\u2500...')."""
    args = "--seed 5"
    if command == "replay":
        rec = tmp_path / "run.rec"
        subprocess.run(
            [CCDASH, "--demo", "--duration", "1", "--seed", "1", "--record", str(rec)],
            capture_output=True,
            timeout=120,
            check=False,
        )
        args = f"replay {rec}"
    term = terminal(
        f"env LC_ALL=C LANG=C PYTHONUTF8=0 {CCDASH} {args}; echo ccdash-exit=$?; sleep 60",
        size=(120, 40),
    )
    screen = term.wait_for("the queue pane", lambda s: "Queue" in s and "depth" in s)
    assert "─ Queue" in screen and "\\u2500" not in screen, screen
    term.press("q")
    final = term.wait_for("the process to exit", lambda s: "ccdash-exit=" in s, deadline=30.0)
    assert "ccdash-exit=0" in final
