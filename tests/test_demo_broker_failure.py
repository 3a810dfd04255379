"""`ccdash --demo` whose broker fails mid-run (the SQLite file's disk full, an I/O
error): one error line naming the failure, exit 1 (the run had started: not a
usage error), never a traceback; what the file accepted stays in it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ccdash import cli
from ccdash.brokers.sqlite import writer
from ccdash.brokers.sqlite.store import Store

AFTER = 15  # calls that succeed before the store "runs out of disk"


@pytest.mark.parametrize(
    ("method", "batch"), [("receive", None), ("publish", None), ("ack", None), ("ack", 1)]
)
def test_demo_with_its_sqlite_store_failing_mid_run_is_one_line_exit_1(
    method: str,
    batch: int | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A store write that fails mid-run (disk I/O error) in a lease, a publish or an
    ack: exit 1 with one `ccdash: error:` line saying the write failed. `batch` 1: every
    write its own transaction, so a failing ack shares its batch with nothing (as under
    load); the old code then replaced consumers until the run ended with a failed verdict
    and no error line."""
    if batch is not None:
        monkeypatch.setattr(writer, "MAX_BATCH", batch)
    real = getattr(Store, method)
    calls = [0]

    def failing(self: Store, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] > AFTER:
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Store, method, failing)
    db = tmp_path / "q.db"
    code = cli.main(["--demo", "--broker", f"sqlite:///{db}", "--duration", "20"])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert calls[0] > AFTER, "the failure was injected"
    assert code == 1, (code, out[-2000:], err[-2000:])
    assert lines and lines[-1].startswith("ccdash: error: "), err
    assert "write failed: disk I/O error" in lines[-1], err
    assert [ln for ln in lines if ln.startswith("ccdash: error: ")] == lines[-1:], err
