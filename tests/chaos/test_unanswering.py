"""Chaos at the door: `--broker` names a server that accepts TCP connections and
never answers (a hung Redis, a firewall's tarpit, the wrong service). Every
command that opens the broker ends within a bounded time with one line
`ccdash: error: ...` and exit 2 (DESIGN: a usage error), never a traceback or a
hang."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from chaos.procs import Proc
from chaos.scenario_run import Chaos

pytestmark = pytest.mark.chaos

GIVE_UP_WITHIN = 30.0  # seconds: the clients' connect/read timeouts (5 s) with room


@pytest.fixture
def tarpit() -> Iterator[int]:
    """A 127.0.0.1 port that accepts every connection and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # kept open, never read or written
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def test_every_command_gives_up_on_a_server_that_never_answers(chaos: Chaos, tarpit: int) -> None:
    """`ccdash --demo`, `ccdash worker` and `ccdash bench` on a broker URL whose server
    accepts and never replies: each exits 2 within its bound with one error line
    naming the (redacted) URL, and no traceback."""
    url = f"redis://user:tarpit-secret@127.0.0.1:{tarpit}/0"
    py = [sys.executable, "-m", "ccdash"]
    handler = "chaos.handlers:record"
    runs: dict[str, Proc] = {
        "demo": chaos.procs.start("demo", [*py, "--demo", "--broker", url, "--duration", "2"]),
        "worker": chaos.procs.start(
            "worker", [*py, "worker", "--broker", url, "--handler", handler]
        ),
        "bench": chaos.procs.start("bench", [*py, "bench", "--broker", url, "--messages", "100"]),
    }
    t0 = time.monotonic()
    took: list[float] = []
    for name, proc in runs.items():
        code = proc.wait_exit(max(1.0, GIVE_UP_WITHIN - (time.monotonic() - t0)))
        took.append(time.monotonic() - t0)
        err = proc.stderr()
        assert code == 2, f"{name}: exit {code}\n{err[-2000:]}"
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ccdash: error: "), f"{name}: {err[-2000:]}"
        assert "tarpit-secret" not in err and f":{tarpit}" in lines[0], f"{name}: {lines[0]}"
    chaos.row.runs = len(runs)
    chaos.row.lost = 0
    chaos.row.recover_s = max(took)
    assert not chaos.procs.problems(), chaos.procs.problems()
