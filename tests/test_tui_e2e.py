"""The real installed `ccdash` in a real terminal (tmux), driven as a person would."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from support.terminal import CCDASH, Terminal, needs_tmux

pytestmark = needs_tmux


def consumer_rows(screen: str) -> dict[str, str]:
    """Consumer id -> state, read off the Consumers pane (wherever it sits)."""
    found = {}
    for line in screen.splitlines():
        for m in re.finditer(r"│ (c\d+)\s+(hung\?|idle|processing|draining|failed|stopped)", line):
            found[m.group(1)] = m.group(2)
    return found


def test_the_installed_dashboard_kills_a_consumer_and_quits_cleanly(
    terminal: Callable[[str], Terminal],
) -> None:
    """ccdash in tmux: panes show; k fails the selected consumer and a new one replaces
    it; q stops the engine and the process exits 0."""
    assert CCDASH.exists(), f"the console script is not installed at {CCDASH}"
    term = terminal(f"{CCDASH} --seed 5; echo ccdash-exit=$?; sleep 60")
    first = term.wait_for(
        "the dashboard's panes",
        lambda s: (
            all(
                pane in s
                for pane in (
                    "Queue",
                    "Consumers",
                    "In-flight leases",
                    "Dead letters",
                    "Alerts",
                    "Drills",
                    "Log",
                )
            )
            and "c1" in consumer_rows(s)
        ),
    )
    before = consumer_rows(first)
    assert before["c1"] in ("idle", "processing")
    term.press("k")
    after = term.wait_for(
        "c1 to fail and a replacement to appear",
        lambda s: (
            consumer_rows(s).get("c1") == "failed"
            and len(
                [
                    c
                    for c, st in consumer_rows(s).items()
                    if st in ("idle", "processing") and c not in before
                ]
            )
            >= 1
        ),
        deadline=20.0,
    )
    assert "killed c1" in after
    term.press("q")
    final = term.wait_for("the process to exit", lambda s: "ccdash-exit=" in s, deadline=30.0)
    assert "ccdash-exit=0" in final
    m = re.search(r"published (\d+), acked (\d+), in the DLQ (\d+), still queued (\d+)", final)
    assert m, final
    published, acked, dead, queued = map(int, m.groups())
    assert published > 0 and published == acked + dead + queued  # nothing lost


def test_a_broker_the_dashboard_cannot_open_is_one_line_exit_2(
    terminal: Callable[[str], Terminal], tmp_path: Path
) -> None:
    """ccdash --broker sqlite:///<missing dir>/q.db in a terminal: the terminal is given
    back, one `ccdash: error: --broker: ...` line, exit 2, no traceback."""
    url = f"sqlite:///{tmp_path}/missing/q.db"
    term = terminal(f"{CCDASH} --broker {url}; echo ccdash-exit=$?; sleep 60")
    final = term.wait_for("the process to exit", lambda s: "ccdash-exit=" in s)
    assert "ccdash-exit=2" in final
    text = "".join(final.splitlines())  # the error wraps at the terminal's width
    assert "ccdash: error: --broker: sqlite broker " in text and "does not exist" in text
    assert "Traceback" not in text and "Queue" not in text  # the screen was given back


def test_the_dashboard_on_sqlite_with_metrics_and_a_log_file(
    terminal: Callable[[str], Terminal], tmp_path: Path
) -> None:
    """ccdash --broker sqlite:///F --metrics-port 0 --log-file L: the header says where
    /metrics is, q exits 0, the log has JSON lines and the queue file stays."""
    db, log = tmp_path / "q.db", tmp_path / "ops.jsonl"
    term = terminal(
        f"{CCDASH} --seed 5 --broker sqlite:///{db} --metrics-port 0 --log-file {log}; "
        "echo ccdash-exit=$?; sleep 60"
    )
    term.wait_for(
        "the metrics address in the header and a consumer",
        lambda s: bool(re.search(r"metrics 127\.0\.0\.1:\d+", s)) and "c1" in consumer_rows(s),
    )
    term.press("q")
    final = term.wait_for("the process to exit", lambda s: "ccdash-exit=" in s, deadline=30.0)
    assert "ccdash-exit=0" in final
    assert db.exists()
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert "engine-started" in events and events[-1] == "engine-stopped"
    assert "ccdash: engine stopped. published" in final


# -- 80x24: what an operator sees first --------------------------------------------------

SMALL = (80, 24)
KILL_PASSED = re.compile(r"│ kill busiest\s+(c\d+\s+)?\d+\s+\d+\s+0\s+.*\bpass\b")


def _ready(screen: str) -> bool:
    return "Consumers" in screen and bool(re.search(r"│ c1 ", screen)) and "lost 0" in screen


def test_a_kill_drill_verdict_with_lost_0_is_on_screen_within_10_s_of_the_key(
    terminal: Callable[..., Terminal],
) -> None:
    """80x24: d then Enter (the drill's own keys, nothing else): within 10 s the drill
    pane shows one more passed kill with held / recovered / lost 0, and the header
    lost 0."""
    term = terminal(f"{CCDASH} --seed 5", SMALL)
    launched = time.monotonic()
    # The default scenario kills the busiest consumer itself at t=6 s: let that verdict
    # come first, so the next passed kill can only be the one asked for here.
    term.wait_for(
        "the scenario's own kill drill", lambda s: _ready(s) and len(KILL_PASSED.findall(s)) == 1
    )
    before = 1
    term.press("d")
    term.wait_for("the drill picker", lambda s: "Run a drill" in s, deadline=5.0)
    pressed = time.monotonic()
    term.press("Enter")
    after = term.wait_for(
        "a passed kill drill with lost 0",
        lambda s: len(KILL_PASSED.findall(s)) > before and "lost 0" in s,
        deadline=10.0,
    )
    took = time.monotonic() - pressed
    assert took <= 10.0
    assert re.search(r"ccdash\s+lost 0\b", after.splitlines()[0])
    print(
        f"\nd, Enter -> verdict in {took:.1f} s ({time.monotonic() - launched:.1f} s "
        "after launch, waiting for the scenario's own drill first)"
    )
    term.press("q")


def test_read_only_refuses_a_kill_and_says_so(terminal: Callable[..., Terminal]) -> None:
    """ccdash --read-only: the header says READ-ONLY; k kills nothing and one line says
    it was refused."""
    term = terminal(f"{CCDASH} --seed 5 --read-only", SMALL)
    first = term.wait_for("the dashboard", _ready)
    assert "READ-ONLY" in first.splitlines()[0]
    term.press("k")
    term.press("6")  # the log pane: where the refusal is written
    screen = term.wait_for("the refusal", lambda s: "read-only: kill refused" in s, deadline=10.0)
    assert "killed c" not in screen
    term.press("q")


def test_the_final_line_accounts_for_purged_dead_letters(
    terminal: Callable[[str], Terminal],
) -> None:
    """p, then x y once the poison is dead, then q: the final line's figures add up,
    the purged dead letters counted (they were neither acked nor are in the DLQ)."""
    term = terminal(f"{CCDASH} --seed 5; echo ccdash-exit=$?; sleep 60")
    term.wait_for("a consumer", lambda s: "c1" in consumer_rows(s))
    term.press("p")
    term.wait_for(
        "a dead letter in the header",
        lambda s: bool(re.search(r"\bdead [1-9]", s.splitlines()[1] if "\n" in s else "")),
    )
    term.press("x")
    term.wait_for("the purge question", lambda s: "Purge all" in s)
    term.press("y")
    term.wait_for("the purge in the log", lambda s: bool(re.search(r"dead letters? purged", s)))
    term.press("q")
    final = term.wait_for("the process to exit", lambda s: "ccdash-exit=" in s, deadline=30.0)
    text = "".join(final.splitlines())  # the final line wraps at the terminal's width
    m = re.search(
        r"published (\d+), acked (\d+), in the DLQ (\d+), purged (\d+), still queued (\d+)", text
    )
    assert m, text
    published, acked, dead, purged, queued = map(int, m.groups())
    assert purged >= 1 and published == acked + dead + purged + queued
