"""Two processes appending to one log file (`--log-file`, a worker's `--audit-log`):
every line arrives, whole, whatever a later opener does to the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

LINES = 2000

WRITER = """
import sys
from ccdash.engine import Event
from ccdash.ops.logfile import JsonLogWriter

path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
writer = JsonLogWriter(path)
writer(Event(0, 0.0, "consumer-started", f"{tag} opened"))
print("ready", flush=True)
sys.stdin.readline()  # go
for i in range(1, n + 1):
    writer(Event(i, 0.0, "consumer-failed", f"{tag} {i} " + "x" * (i % 7 * 1500)))
writer.close()
print(writer.error or "ok", flush=True)
"""


def _writer(path: Path, tag: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), tag, str(LINES)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("meanwhile", ["made-readable", "hard-linked", "nothing"])
def test_two_processes_appending_to_one_log_lose_no_line(meanwhile: str, tmp_path: Path) -> None:
    """Process A opens the log; the file is made group-readable (a log shipper) or gets a
    second name (a backup by hard link); process B opens it (moving it to a fresh 0600
    file, as it must); then both write 2,000 lines at once, some over 8 kB. Every line is
    in the file once and whole. A's lines went to the old, unlinked file and were lost."""
    log = tmp_path / "ops.log"
    a = _writer(log, "A")
    if meanwhile == "made-readable":
        log.chmod(0o640)
    elif meanwhile == "hard-linked":
        os.link(log, tmp_path / "ops.log.keep")
    b = _writer(log, "B")
    for proc in (a, b):
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in (a, b):
        out, _ = proc.communicate(timeout=100)
        assert proc.returncode == 0 and out == "ok\n", out
    raw = log.read_bytes()
    assert raw.endswith(b"\n")
    messages = [json.loads(line)["message"] for line in raw.split(b"\n")[:-1]]
    seen = Counter(" ".join(m.split(" ")[:2]) for m in messages)
    want = {f"{tag} {i}" for tag in "AB" for i in range(1, LINES + 1)}
    assert {"A opened", "B opened"} <= set(seen)
    assert not want - set(seen), f"{len(want - set(seen))} lines missing"
    assert all(n == 1 for n in seen.values())
    assert log.stat().st_mode & 0o777 == 0o600 and log.stat().st_nlink == 1
