"""SIGTERM and SIGHUP (a closed terminal or ssh session) stop the dashboard and a worker
the way `q` and SIGINT do: handlers finish, leases go back, the recording is complete,
the terminal is given back. (`ccdash --demo`: tests/test_cli.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.fleet import worker_env
from support.polling import wait_until
from support.terminal import CCDASH, Terminal, needs_tmux

from ccdash import Engine, EngineConfig
from ccdash.record.reader import read_recording

ROOT = Path(__file__).resolve().parent.parent
STOP_SIGNALS = [signal.SIGTERM, signal.SIGHUP]


def _complete(path: Path) -> bool:
    """The recording has its end marker (a killed run's stops without one)."""
    return not read_recording(str(path)).cut_short


@needs_tmux
@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=lambda s: s.name)
def test_a_signal_stops_the_dashboard_gracefully(
    terminal: Callable[..., Terminal], tmp_path: Path, sig: signal.Signals
) -> None:
    """kill -TERM / -HUP of the dashboard: it stops as on `q` (the final line, the screen
    given back, a complete recording) and exits 128+signal, not killed outright."""
    pid, rec = tmp_path / "pid", tmp_path / "run.rec"
    term = terminal(
        f"sh -c 'echo $$ > {pid}; exec {CCDASH} --seed 5 --record {rec}'; "
        "echo ccdash-exit=$?; sleep 60",
        size=(120, 40),
    )
    term.wait_for("the consumers", lambda s: "Consumers" in s and "│ c1 " in s)
    os.kill(int(pid.read_text()), sig)
    final = term.wait_for("the process to exit", lambda s: "ccdash-exit=" in s, deadline=30.0)
    assert f"ccdash-exit={128 + sig}" in final, final
    assert "ccdash: engine stopped. published" in "".join(final.splitlines())
    assert "Consumers" not in final  # the alternate screen was left
    assert _complete(rec)


@needs_tmux
@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=lambda s: s.name)
def test_a_signal_stops_the_replay_dashboard_and_gives_the_terminal_back(
    terminal: Callable[..., Terminal], tmp_path: Path, sig: signal.Signals
) -> None:
    """kill -TERM / -HUP of `ccdash replay FILE`: it leaves as on `q` (the screen given
    back) with 128+signal; it was killed outright in its alternate screen."""
    pid, rec = tmp_path / "pid", tmp_path / "run.rec"
    subprocess.run(
        [str(CCDASH), "--demo", "--duration", "1", "--seed", "1", "--record", str(rec)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    term = terminal(
        f"sh -c 'echo $$ > {pid}; exec {CCDASH} replay {rec}'; echo ccdash-exit=$?; sleep 60",
        size=(120, 40),
    )
    term.wait_for("the consumers", lambda s: "Consumers" in s and "READ-ONLY" in s)
    os.kill(int(pid.read_text()), sig)
    final = term.wait_for("the process to exit", lambda s: "ccdash-exit=" in s, deadline=30.0)
    assert f"ccdash-exit={128 + sig}" in final, final
    assert "Consumers" not in final  # the alternate screen was left


@needs_tmux
def test_the_dashboard_whose_terminal_window_closes_exits(
    terminal: Callable[..., Terminal], tmp_path: Path
) -> None:
    """The terminal closed under the dashboard (tmux killed: SIGHUP, then every write
    fails): it stops and exits with a complete recording. Textual's writer thread died on
    the EIO and the app's last writes blocked on its full queue: the process hung."""
    pid, rec = tmp_path / "pid", tmp_path / "run.rec"
    term = terminal(f"sh -c 'echo $$ > {pid}; exec {CCDASH} --seed 5 --record {rec}'")
    term.wait_for("the consumers", lambda s: "Consumers" in s and "│ c1 " in s)
    term.close()
    process = int(pid.read_text())

    def gone() -> bool:
        try:
            os.kill(process, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        wait_until(gone, 30, "the dashboard to exit")
    finally:
        if not gone():
            os.kill(process, signal.SIGKILL)
    assert _complete(rec)


async def _publish(url: str, n: int) -> None:
    async with Engine(EngineConfig(consumers=0, min_consumers=0), broker=url) as pub:
        for i in range(n):
            await pub.publish({"n": i})


@pytest.mark.slow
def test_sighup_stops_a_worker_gracefully(redis_url: str, tmp_path: Path) -> None:
    """SIGHUP to `ccdash worker` (its terminal closed): it stops as on SIGTERM, logs why,
    exits 0 and its recording is complete; killed outright, its leases would wait out
    the heartbeat TTL and its recording would end mid-run."""
    out_dir, rec = tmp_path / "out", tmp_path / "w.rec"
    out_dir.mkdir()
    env = worker_env(out_dir)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ccdash.worker",
            "--broker",
            redis_url,
            "--handler",
            "support.fleet_handlers:record",
            "--name",
            "hup",
            "--record",
            str(rec),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        asyncio.run(_publish(redis_url, 5))
        wait_until(lambda: list(out_dir.glob("*.log")), 30, "the worker to handle a message")
        proc.send_signal(signal.SIGHUP)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-2000:]
    assert "stopping (signal SIGHUP)" in out and "worker hup stopped" in out
    assert _complete(rec)


@pytest.mark.slow
def test_a_second_ctrl_c_forces_a_worker_to_stop(redis_url: str, tmp_path: Path) -> None:
    """Ctrl-C to `ccdash worker --grace 60` with a handler in progress: it stops
    gracefully (waits for the handler); a second Ctrl-C forces the stop: the handler is
    cancelled at once, its message handed back (attempt 1 again, no lease to wait
    out), the worker exits 0 within seconds, not after the 60 s grace."""
    from support.redis_fixtures import lease

    from ccdash.brokers.base import QueueConfig
    from ccdash.brokers.redis import RedisBroker

    out_dir, log_path = tmp_path / "out", tmp_path / "worker.log"
    out_dir.mkdir()
    env = worker_env(out_dir)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ccdash.worker",
                "--broker",
                redis_url,
                "--handler",
                "support.fleet_handlers:sleeper",
                "--name",
                "twice",
                "--grace",
                "60",
                "--concurrency",
                "1",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        asyncio.run(_publish(redis_url, 1))
        wait_until(lambda: list(out_dir.glob("started-*")), 30, "the handler to start")
        proc.send_signal(signal.SIGINT)
        wait_until(lambda: "stopping (signal SIGINT)" in log_path.read_text(), 10, "the stop")
        assert proc.poll() is None  # graceful: the handler in progress is waited for
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = log_path.read_text()
    assert proc.returncode == 0, out[-2000:]
    assert took < 30, (took, out[-2000:])  # forced: well within the 60 s grace
    assert "forcing the stop" in out and "worker twice stopped" in out, out[-2000:]

    async def handed_back() -> int:
        broker = RedisBroker.from_url(redis_url + "&ttl=0.6", QueueConfig(seed=1))
        await broker.open()
        try:
            return (await lease(broker, within=2)).attempt
        finally:
            await broker.close()

    assert asyncio.run(handed_back()) == 1


def _hang_up(args: list[str], cwd: Path, ready: bytes) -> int:
    """Run ccdash on a pty until it shows `ready`, close the pty (the terminal is gone:
    writes to it fail with EIO) and send SIGHUP, as a closed window or ssh session does;
    the exit status."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    for name in ("COLUMNS", "LINES", "TMUX"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [str(CCDASH), *args],
        cwd=cwd,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    try:
        seen = b""
        end = time.monotonic() + 30
        while ready not in seen and time.monotonic() < end:  # drain it: it must not block
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 65536)
        assert ready in seen, seen[-2000:]
        os.close(master)
        proc.send_signal(signal.SIGHUP)
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_dashboard_whose_terminal_hung_up_still_stops_gracefully(tmp_path: Path) -> None:
    """The dashboard's terminal gone, then SIGHUP: it stops as on `q` (a complete
    recording, exit 129), not with the EIO of its last line (exit 1)."""
    code = _hang_up(["--seed", "5", "--record", "run.rec"], tmp_path, b"Consumers")
    assert code == 128 + signal.SIGHUP
    assert _complete(tmp_path / "run.rec")


def test_a_demo_whose_terminal_hung_up_still_writes_its_report(tmp_path: Path) -> None:
    """`ccdash --demo` on a terminal that is gone, then SIGHUP: the run stops gracefully
    and writes its JSON report and a complete recording (exit 129); its progress output
    failing with EIO stopped it with a traceback and no report (exit 1)."""
    code = _hang_up(
        ["--demo", "--duration", "30", "--json", "out.json", "--record", "run.rec"],
        tmp_path,
        b"published",
    )
    assert code == 128 + signal.SIGHUP
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["stopped_by"] == "SIGHUP" and report["lost"] == 0
    assert _complete(tmp_path / "run.rec")


def test_a_demo_started_under_nohup_ignores_sighup(tmp_path: Path) -> None:
    """`nohup ccdash --demo`: SIGHUP stays ignored (the run goes on to its report), as the
    user asked; only a process that may act on it stops."""
    proc = subprocess.Popen(
        [str(CCDASH), "--demo", "--duration", "2", "--seed", "1", "--json", "out.json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),  # what nohup does
    )
    try:
        assert proc.stdout is not None
        while "running: published" not in proc.stdout.readline():  # the run is under way
            assert proc.poll() is None
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "INTERRUPTED" not in out and "SIGHUP" not in out, out
    assert proc.returncode in (0, 1), out + err  # the run's own verdict
    assert "Traceback" not in err
