"""Opening the SQLite broker while another process holds the file's write lock: it
waits, saying so once, for up to the lock patience (as a run's writes do), then fails
with one line naming the file and the lock; from the CLI, exit 1 and no traceback."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support.polling import wait_until

from ccdash import cli
from ccdash.brokers.base import BrokerError
from ccdash.brokers.sqlite import SqliteBroker

WAITING = "waiting for it"


def shorten(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy timeout of 50 ms and a patience of 0.5 s (300 s in real runs)."""
    monkeypatch.setattr("ccdash.brokers.sqlite.schema.BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr("ccdash.brokers.sqlite.schema.LOCK_PATIENCE", 0.5)


async def held(path: Path, how: str) -> sqlite3.Connection:
    """Another connection (as another process would) holding the write lock of `path`:
    `immediate` on a queue file ccdash made, `exclusive` on a file another program made
    (rollback journal, not yet WAL: even switching it to WAL waits)."""
    if how == "immediate":
        made = SqliteBroker(str(path))
        await made.open()
        await made.close()
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE other (x)")
        conn.close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute(f"BEGIN {how.upper()}")
    return other


def waits_said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if WAITING in r.getMessage()]


@pytest.mark.parametrize("how", ["immediate", "exclusive"])
async def test_an_open_behind_a_held_write_lock_fails_after_the_patience(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The open waits for the lock, says so once, and past the patience raises a
    one-line BrokerError naming the file and the lock; once the lock is gone, the
    file opens."""
    shorten(monkeypatch)
    caplog.set_level(logging.WARNING, "ccdash.brokers.sqlite")
    path = tmp_path / "q.db"
    other = await held(path, how)
    broker = SqliteBroker(str(path))
    try:
        with pytest.raises(BrokerError) as failed:
            async with asyncio.timeout(10):
                await broker.open()
    finally:
        other.execute("ROLLBACK")
        other.close()
    message = str(failed.value)
    assert str(path) in message and "holds the write lock" in message, message
    assert "\n" not in message
    assert len(waits_said(caplog)) == 1, caplog.text
    late = SqliteBroker(str(path))
    await late.open()
    await late.close()


def test_the_demo_behind_a_held_write_lock_exits_1_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`ccdash --demo --broker sqlite:///F` with F's write lock held by another
    process: one `ccdash: error:` line naming F and the lock, exit 1, no traceback."""
    shorten(monkeypatch)
    caplog.set_level(logging.WARNING, "ccdash.brokers.sqlite")
    path = tmp_path / "q.db"
    other = asyncio.run(held(path, "immediate"))
    codes: list[int] = []
    run = threading.Thread(
        target=lambda: codes.append(
            cli.main(["--demo", "--broker", f"sqlite:///{path}", "--duration", "1"])
        ),
        daemon=True,
    )
    try:
        run.start()
        wait_until(lambda: not run.is_alive(), 20, "the demo to give up on the lock")
    finally:
        other.execute("ROLLBACK")
        other.close()
        run.join(30)
    _, err = capsys.readouterr()
    assert codes == [1], err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ccdash: error: "), err
    assert str(path) in lines[0] and "holds the write lock" in lines[0], err
    assert len(waits_said(caplog)) == 1, caplog.text


OPENER = """
import sys
import ccdash.brokers.sqlite.schema as schema
schema.BUSY_TIMEOUT_MS = 50
from ccdash import cli
sys.exit(cli.main(["--demo", "--broker", "sqlite:///" + sys.argv[1], "--duration", "1"]))
"""


def test_ctrl_c_while_the_open_waits_for_the_lock_ends_the_demo(tmp_path: Path) -> None:
    """Ctrl-C while `ccdash --demo` waits for another process's write lock: it exits
    (130) at once, the lock still held; it does not wait out the patience (300 s)."""
    path = tmp_path / "q.db"
    other = asyncio.run(held(path, "immediate"))
    err = tmp_path / "err.txt"
    try:
        with err.open("w") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-c", OPENER, str(path)], stdout=subprocess.DEVNULL, stderr=sink
            )
        try:
            wait_until(lambda: WAITING in err.read_text(), 30, "the demo to say it waits")
            proc.send_signal(signal.SIGINT)
            wait_until(lambda: proc.poll() is not None, 10, "the demo to end after Ctrl-C")
        finally:
            proc.kill()
            proc.wait(30)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert proc.returncode == 130, err.read_text()
    assert "Traceback" not in err.read_text()
