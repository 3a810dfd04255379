"""An output that is a named pipe (FIFO): written to while a reader is there; one with
no reader never stalls a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

CCDASH = str(Path(sys.executable).with_name("ccdash"))


def test_a_recording_to_a_pipe_nobody_reads_does_not_stall_the_run(tmp_path: Path) -> None:
    """`--record FIFO` with no reader: the recording fails with one line, the run does
    not (its report comes out; exit 2 as for any recording that could not be written).
    The first frame's open blocked the event loop for ever: the run stalled, and
    SIGTERM could not stop it (the loop's handler never ran; only SIGKILL did)."""
    fifo = tmp_path / "rec.fifo"
    os.mkfifo(fifo, 0o600)
    proc = subprocess.Popen(
        [CCDASH, "--demo", "--duration", "1", "--record", str(fifo)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=10)
            raise AssertionError("the run stalled (it did end on SIGTERM)") from None
        except subprocess.TimeoutExpired:
            raise AssertionError("the run stalled, and SIGTERM did not end it") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, err
    assert "ccdash demo report" in out
    assert err.startswith("ccdash: error: --record: ") and "pipe" in err, err


def test_a_recording_to_a_pipe_with_a_reader_is_written(tmp_path: Path) -> None:
    """`--record FIFO` with a reader on it: the reader gets the recording."""
    fifo = tmp_path / "rec.fifo"
    os.mkfifo(fifo, 0o600)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:  # blocks until the writer opens
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc = subprocess.run(
        [CCDASH, "--demo", "--duration", "1", "--record", str(fifo)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    reader.join(timeout=30)
    assert proc.returncode in (0, 1), proc.stderr
    assert got and got[0][:2] == b"\x1f\x8b"  # the gzip stream
