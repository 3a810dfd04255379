"""What the benchmarks share: the workload, a private redis-server, callgrind counts.

The workload is the one every system gets: N messages `{"id": i, "body": "x"*100}`
handled by a trivial async handler that counts each id, so exactly-once is checked
after every run (`check_once`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any


def workload(n: int) -> list[dict[str, Any]]:
    """The messages every system handles."""
    return [{"id": i, "body": "x" * 100} for i in range(n)]


def check_once(counts: list[int], what: str) -> None:
    """Every message handled exactly once, or say how it was not."""
    missing = sum(1 for c in counts if c == 0)
    extra = sum(c - 1 for c in counts if c > 1)
    if missing or extra:
        raise RuntimeError(f"{what}: {missing} messages never handled, {extra} duplicates")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def redis_server(*, counted: list[int] | None = None) -> Iterator[tuple[str, int] | None]:
    """A private redis-server without persistence on a free 127.0.0.1 port:
    (url, pid), or None when redis-server is not installed.

    With `counted` (a list), the server runs under callgrind with `--hz 1` (its
    idle timer costs next to nothing then) and, once it has shut down, the
    instructions it executed from start to exit are appended to `counted`."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", d]
        if counted is not None:
            argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv]
            argv += ["--hz", "1"]
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE if counted is not None else subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + (120 if counted is not None else 15)
            while time.monotonic() < deadline:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=0.5) as c,
                ):
                    c.sendall(b"PING\r\n")
                    if c.recv(64).startswith(b"+PONG"):
                        break
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0", proc.pid
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=120)
        if counted is not None:
            found = re.search(r"Collected : (\d+)", err.decode(errors="replace"))
            if found is None:
                raise RuntimeError(f"no instruction count from callgrind:\n{err[-2000:]!r}")
            counted.append(int(found.group(1)))


def has_valgrind() -> bool:
    """Can instructions be counted here?"""
    return shutil.which("valgrind") is not None


def instructions(argv: list[str]) -> int:
    """CPU instructions of one Python run of `argv`, counted by callgrind."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, *argv]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    found = re.search(r"Collected : (\d+)", out)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out[-2000:]}")
    return int(found.group(1))


def per_message(argv: list[str], base: int, extra: int) -> float:
    """Instructions per message: a run of base+extra messages minus a run of base,
    so start-up and imports cancel out. `argv` ends with "--messages"."""
    return (instructions([*argv, str(base + extra)]) - instructions([*argv, str(base)])) / extra
