"""Real child processes for the chaos suite, and bounded waits.

Every wait is polled with a deadline; a process that does not exit within its
deadline is a failure (it is then killed), never a hang of the suite.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
SCENARIO = Path(__file__).with_name("scenario.toml")


class Proc:
    """One child process with its own stdout and stderr files."""

    def __init__(
        self, name: str, argv: list[str], tmp: Path, env: dict[str, str], stem: str | None = None
    ) -> None:
        self.name = name
        self.argv = argv
        self.out = tmp / f"{stem or name}.out"
        self.err = tmp / f"{stem or name}.err"
        with self.out.open("ab") as out, self.err.open("ab") as err:  # the child keeps its fds
            self.popen = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )
        self.pid = self.popen.pid
        self.started = time.monotonic()
        self.killed = False  # SIGKILLed by the test: its exit status is ours, not a crash
        self.stopping = False  # the test asked it to stop
        self.wedged = False  # did not exit within its deadline

    def alive(self) -> bool:
        """Still running?"""
        return self.popen.poll() is None

    def send(self, sig: int) -> None:
        """Send it a signal."""
        self.popen.send_signal(sig)

    def freeze(self) -> None:
        """SIGSTOP: what it holds stays put while the test reads it."""
        self.send(signal.SIGSTOP)

    def kill9(self) -> None:
        """SIGKILL (a crash), and reap it."""
        self.killed = True
        self.popen.kill()
        self.popen.wait(timeout=10)

    def wait_exit(self, within: float, *, dump: bool = False) -> int | None:
        """Its exit status, or None when it did not exit within `within` seconds: it is
        then marked wedged and killed (`dump`: first SIGUSR1, a worker logs its stacks)."""
        try:
            return self.popen.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.wedged = True
            if dump:
                self.send(signal.SIGUSR1)
                time.sleep(0.5)
            self.kill9()
            return None

    def stop(
        self, sig: int = signal.SIGTERM, within: float = 15.0, *, dump: bool = False
    ) -> int | None:
        """Send `sig` and wait (bounded) for the exit status."""
        self.stopping = True
        if self.alive():
            self.send(sig)
        return self.wait_exit(within, dump=dump)

    def stdout(self) -> str:
        """What it printed."""
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        """What it logged."""
        return self.err.read_text(errors="replace")

    def crashed(self) -> str | None:
        """Why this process counts as crashed or wedged (None: it did not)."""
        if self.wedged:
            return f"{self.name} did not exit within its deadline (killed)"
        if "Traceback" in self.stderr():
            return f"{self.name} logged a traceback:\n{self.tail()}"
        code = self.popen.poll()
        if code is not None and code < 0 and not self.killed:
            return f"{self.name} died of signal {-code}"
        return None

    def tail(self, lines: int = 40) -> str:
        """The end of its stderr, for failure messages."""
        return "\n".join(self.stderr().splitlines()[-lines:])


class Procs:
    """The processes of one scenario; whatever is left running at the end is killed."""

    def __init__(self, tmp: Path, ledger: Path) -> None:
        self.tmp = tmp
        self.ledger = ledger
        self.all: list[Proc] = []

    def env(self, **extra: str) -> dict[str, str]:
        """The children's environment: the tests directory importable, the ledger."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAOS_", "CCDASH_"))}
        env.update(
            PYTHONPATH=f"{TESTS}{os.pathsep}{ROOT}",
            CHAOS_LEDGER=str(self.ledger),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def start(self, name: str, argv: list[str], **env: str) -> Proc:
        """Start one child."""
        runs = sum(p.name == name for p in self.all)  # a restart under the same name
        proc = Proc(name, argv, self.tmp, self.env(**env), stem=f"{name}.{runs}" if runs else name)
        self.all.append(proc)
        return proc

    def worker(
        self,
        url: str,
        name: str,
        *,
        handler: str = "record",
        concurrency: int = 4,
        ttl: float = 1.5,
        vt: float = 30.0,
        grace: float = 2.0,
        max_attempts: int = 5,
        **env: str,
    ) -> Proc:
        """A real `ccdash worker` on `url` running a chaos handler."""
        return self.start(
            name,
            [
                sys.executable,
                "-m",
                "ccdash",
                "worker",
                "--broker",
                url,
                "--handler",
                f"chaos.handlers:{handler}",
                "--name",
                name,
                "--concurrency",
                str(concurrency),
                "--heartbeat-ttl",
                str(ttl),
                "--visibility-timeout",
                str(vt),
                "--grace",
                str(grace),
                "--max-attempts",
                str(max_attempts),
            ],
            **env,
        )

    def publisher(
        self, url: str, out: Path, n: int, rate: float, *, name: str = "publisher", start: int = 0
    ) -> Proc:
        """A process publishing `n` numbered messages to a Redis queue at `rate` per
        second, recording each id once Redis has it."""
        return self.start(
            name,
            [sys.executable, "-m", "chaos.publisher", url, str(out), str(n), str(rate), str(start)],
        )

    def sqlite_engine(
        self,
        name: str,
        db: Path,
        published: Path,
        *,
        publish: int = 0,
        rate: float = 0.0,
        start: int = 0,
        consumers: int = 4,
        drain: bool = False,
        handler: str = "record",
        **env: str,
    ) -> Proc:
        """The small engine program on a SQLite file (publishes and/or consumes)."""
        argv = [
            sys.executable,
            "-m",
            "chaos.sqlite_engine",
            str(db),
            str(published),
            "--publish",
            str(publish),
            "--rate",
            str(rate),
            "--start",
            str(start),
            "--consumers",
            str(consumers),
            "--handler",
            handler,
        ]
        if drain:
            argv.append("--drain")
        return self.start(name, argv, **env)

    def demo(
        self,
        name: str,
        broker: str,
        report: Path,
        *,
        handler: str = "record",
        duration: float = 6.0,
        **env: str,
    ) -> Proc:
        """`ccdash --demo` on the chaos scenario with a chaos handler."""
        return self.start(
            name,
            [
                sys.executable,
                "-m",
                "ccdash",
                "--demo",
                "--scenario",
                str(SCENARIO),
                "--handler",
                f"chaos.handlers:{handler}",
                "--broker",
                broker,
                "--duration",
                str(duration),
                "--json",
                str(report),
                "--seed",
                "11",
            ],
            **env,
        )

    def check_running(self) -> None:
        """AssertionError if a process ended that nobody stopped, unless it finished on
        its own with status 0 (a publisher that is done)."""
        for proc in self.all:
            code = proc.popen.poll()
            if code is None or proc.killed or proc.stopping:
                continue
            if code != 0 or "Traceback" in proc.stderr():
                raise AssertionError(f"{proc.name} exited with {code} mid-run:\n{proc.tail()}")

    def problems(self) -> list[str]:
        """Every crash, unexpected death or wedge among them."""
        return [p for p in (proc.crashed() for proc in self.all) if p]

    def cleanup(self) -> None:
        """Kill whatever is still running (a failed scenario leaves no orphans)."""
        for proc in self.all:
            if proc.alive():
                with contextlib.suppress(OSError):  # a frozen one must die too
                    proc.send(signal.SIGCONT)
                proc.popen.kill()
                proc.popen.wait(timeout=10)
