"""A handler that raises KeyboardInterrupt (or SystemExit) fails its delivery; a real
Ctrl-C still stops the run."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fleet import Fleet, fleet_on, has_workers, publish
from support.polling import until
from support.redis_fixtures import RedisServer

from ccdash import Delivery, Engine, EngineConfig, Snapshot
from ccdash.clock import MonotonicClock
from ccdash.interrupts import is_stop_request
from ccdash.scenario.ledger import Ledger, Tap

CCDASH = str(Path(sys.executable).with_name("ccdash"))


def _raiser(exc: type[BaseException], sync: bool) -> Callable[[Delivery], Any]:
    """A handler raising `exc` for the body "bad", fine for the others."""

    def handle_sync(d: Delivery) -> None:
        if d.body == "bad":
            raise exc("from the handler")

    async def handle(d: Delivery) -> None:
        handle_sync(d)

    return handle_sync if sync else handle


def _batch_raiser(exc: type[BaseException]) -> Callable[[list[Delivery]], Any]:
    """A batch handler raising `exc` for a batch with the body "bad" in it."""

    async def handle(batch: list[Delivery]) -> None:
        if any(d.body == "bad" for d in batch):
            raise exc("from the handler")

    return handle


def _run_owning_sigint(run: Callable[[], Awaitable[Snapshot]]) -> Snapshot:
    """Run `run` on a fresh loop that owns SIGINT, as `ccdash --demo` and a worker do; a
    KeyboardInterrupt out of it fails the test (it must not stop pytest)."""

    async def main() -> Snapshot:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, lambda: None)
        try:
            return await run()
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    try:
        return asyncio.run(main())
    except BaseException as exc:  # KeyboardInterrupt, SystemExit, an exception group
        escaped = repr(exc)
    pytest.fail(f"the handler's exception stopped the run: {escaped}", pytrace=False)


async def _bad_and_good(engine: Engine) -> Snapshot:
    async with engine:
        await engine.publish("bad")
        for i in range(4):
            await engine.publish(i)
        await engine.join(timeout=20)
        return engine.snapshot()


CFG: dict[str, Any] = {"consumers": 2, "max_attempts": 2, "backoff_base": 0.01, "backoff_max": 0.02}


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("path", ["async", "thread", "tapped-thread", "batch"])
def test_a_handler_raising_keyboard_interrupt_or_system_exit_fails_that_delivery(
    path: str, exc: type[BaseException]
) -> None:
    """On every path a handler takes (async, a sync handler's thread, the loss checker's
    tap around one, a batch), its own KeyboardInterrupt or SystemExit is that delivery's
    failure, named in the DLQ; the other messages are acked; no consumer failed."""

    def make() -> Engine:
        if path == "batch":
            cfg = EngineConfig(**CFG, batch_size=4, batch_linger=0.01)
            return Engine(cfg, batch_handler=_batch_raiser(exc))
        handler = _raiser(exc, sync=path != "async")
        if path == "tapped-thread":
            handler = Tap(handler, Ledger(MonotonicClock()))
        return Engine(EngineConfig(**CFG), handler=handler)

    snap = _run_owning_sigint(lambda: _bad_and_good(make()))
    assert snap.failovers == 0
    assert snap.queue.dead >= 1
    assert snap.acked + snap.queue.dead == 5
    assert all(d.last_error == f"{exc.__name__}: from the handler" for d in snap.dead_letters)
    if path != "batch":  # a batch fails as a whole
        assert snap.queue.dead == 1 and snap.acked == 4


class _StrRaises(Exception):
    """An error whose str() raises: what it raises is set per test."""

    raises: type[BaseException] = Exception

    def __str__(self) -> str:
        raise self.raises("from __str__")


@pytest.mark.parametrize(
    "raised", [SystemExit, KeyboardInterrupt, asyncio.CancelledError, GeneratorExit]
)
def test_an_error_whose_str_raises_a_base_exception_fails_only_that_delivery(
    raised: type[BaseException],
) -> None:
    """A handler's error whose __str__ raises SystemExit, KeyboardInterrupt, a
    CancelledError or GeneratorExit: that delivery fails, its error still named by
    type; the engine and its other messages go on (it ended the run: exit 3 for
    SystemExit(3), 130, or its consumers stalled)."""
    err = type("Hostile", (_StrRaises,), {"raises": raised})

    async def handle(d: Delivery) -> None:
        if d.body == "bad":
            raise err()

    snap = _run_owning_sigint(lambda: _bad_and_good(Engine(EngineConfig(**CFG), handler=handle)))
    assert (snap.acked, snap.queue.dead, snap.failovers) == (4, 1, 0)
    assert snap.dead_letters[0].last_error == "Hostile: <str() of this exception failed>"


def test_a_handler_raising_generator_exit_itself_fails_that_delivery() -> None:
    """GeneratorExit raised by the handler's own code (not the coroutine being closed):
    that delivery fails; the run goes on (it escaped as an exception group traceback)."""
    snap = _run_owning_sigint(
        lambda: _bad_and_good(Engine(EngineConfig(**CFG), handler=_raiser(GeneratorExit, False)))
    )
    assert (snap.acked, snap.queue.dead, snap.failovers) == (4, 1, 0)
    assert snap.dead_letters[0].last_error == "GeneratorExit: from the handler"


HANDLER = """
import asyncio
import time

async def handle(d):
    if isinstance(d.body, dict) and d.body.get("n", 0) % 7 == 3:
        raise KeyboardInterrupt("pressed by the handler")
    await asyncio.sleep(0.001)

async def slow(d):
    print("handling", flush=True)
    await asyncio.sleep(30)

async def blocking(d):
    print("handling", flush=True)
    while True:
        time.sleep(0.05)  # holds the loop: a Ctrl-C's KeyboardInterrupt lands here
        await asyncio.sleep(0)
"""

SCENARIO = """
[scenario]
name = "kb"
duration = 1.5
[engine]
consumers = 3
max_attempts = 2
backoff_base = 0.01
backoff_max = 0.05
[load]
shape = "steady"
rate = 200
"""


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCDASH_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp), os.environ.get("PYTHONPATH")]))
    return env


def test_demo_with_a_handler_raising_keyboard_interrupt_runs_to_its_report(
    tmp_path: Path,
) -> None:
    """`ccdash --demo --handler` whose handler raises KeyboardInterrupt for some
    messages: those are retried and dead-lettered, named; the run goes on to its report
    (not exit 130, no 'Task exception was never retrieved')."""
    (tmp_path / "kbjobs.py").write_text(HANDLER)
    (tmp_path / "kb.toml").write_text(SCENARIO)
    proc = subprocess.run(
        [CCDASH, "--demo", "--scenario", "kb.toml", "--handler", "kbjobs:handle"]
        + ["--json", "r.json"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert "never retrieved" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["lost"] == 0
    assert report["dead_lettered"] > 0 and report["acked"] > 0
    assert report["acked"] + report["dead_lettered"] == report["published"]
    assert "KeyboardInterrupt: pressed by the handler" in proc.stdout + json.dumps(report)


def _demo_until(tmp: Path, handler: str, *lines: str) -> subprocess.Popen[str]:
    """Start a 60 s `ccdash --demo` with `handler`; return once each of `lines` began a
    line of its output, in turn, after SIGINT to it (the first once it is handling)."""
    (tmp / "kbjobs.py").write_text(HANDLER)
    (tmp / "kb.toml").write_text(SCENARIO.replace("1.5", "60"))
    proc = subprocess.Popen(
        [CCDASH, "--demo", "--scenario", "kb.toml", "--handler", f"kbjobs:{handler}"],
        cwd=tmp,
        env=_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for want in ("handling", *lines):
        for line in proc.stdout:  # bounded by the test's timeout
            if line.startswith(want):
                break
        proc.send_signal(signal.SIGINT)
    return proc


def test_a_real_ctrl_c_still_stops_a_run_whose_handler_is_busy(tmp_path: Path) -> None:
    """SIGINT to `ccdash --demo` while its handlers run: the graceful stop (exit 130,
    the report)."""
    proc = _demo_until(tmp_path, "slow")
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "never retrieved" not in err, err
    assert "run interrupted (SIGINT)" in out and "ccdash demo report" in out, out


def test_a_second_ctrl_c_lands_in_a_handler_and_forces_the_stop(tmp_path: Path) -> None:
    """A second SIGINT while a handler holds the loop (`time.sleep`) raises
    KeyboardInterrupt inside it: a real Ctrl-C, so the run stops at once, exit 130, one
    line, no traceback and no 'Task exception was never retrieved'."""
    proc = _demo_until(tmp_path, "blocking", "SIGINT: stopping gracefully")
    try:
        wait = 0.2
        for _ in range(20):  # one sent as the first's note came out may be dropped
            try:
                out, err = proc.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
                wait = min(2 * wait, 3.0)
        else:
            raise AssertionError("a second SIGINT did not stop the run")
    finally:
        proc.kill()
        proc.wait()
    # 130; or, when a retried SIGINT arrived as it was exiting (a loaded machine), the
    # signal's own exit (-2, which a shell shows as 130 too), after the same one line.
    assert proc.returncode in (130, -signal.SIGINT), err[-3000:]
    assert err == "ccdash: interrupted\n"
    assert "ccdash demo report" not in out


FORCED = """
import asyncio
from ccdash.aio import run_bounded

async def interrupted():
    raise KeyboardInterrupt  # as a second Ctrl-C does, landing in a handler

async def main():
    async with asyncio.TaskGroup() as tg:  # as the engine's consumer tasks are
        tg.create_task(interrupted())
        await asyncio.sleep(30)

try:
    run_bounded(main())
except KeyboardInterrupt:
    print("interrupted")
"""


def test_a_forced_stop_leaves_no_task_exception_never_retrieved() -> None:
    """A KeyboardInterrupt out of a task of the run (a second Ctrl-C landing in a
    handler): run_bounded raises it, and the main task that then ends with it too is not
    reported on stderr as 'Task exception was never retrieved' with its traceback."""
    proc = subprocess.run(
        [sys.executable, "-c", FORCED], capture_output=True, text=True, timeout=60
    )
    assert proc.stdout == "interrupted\n" and proc.returncode == 0
    assert proc.stderr == ""


@pytest.fixture
def fleet(redis_server: RedisServer, tmp_path: Path) -> Iterator[Fleet]:
    yield from fleet_on(redis_server, tmp_path, "kbi")


async def test_a_worker_whose_handler_raises_keyboard_interrupt_keeps_serving(
    fleet: Fleet,
) -> None:
    """`ccdash worker` whose handler raises KeyboardInterrupt for some deliveries: those
    are retried and done on their second attempt; the worker serves on and stops
    cleanly, no traceback in its log."""
    handler = "support.fleet_handlers:interrupts_once"
    fleet.spawn("k1", "--max-attempts", "3", delay=0.0, handler=handler)
    await until(lambda: has_workers(fleet.url, 1), 20, "the worker")
    ids = await publish(fleet.url, 30)
    await until(lambda: ids <= fleet.done(), 30, "every message handled")
    assert fleet.procs["k1"].poll() is None, fleet.log("k1")
    attempts = sorted(a for _, a in fleet.records())
    assert attempts == [1] * 20 + [2] * 10
    assert fleet.stop_all() == {"k1": 0}, fleet.log("k1")
    assert "Traceback" not in fleet.log("k1") and "never retrieved" not in fleet.log("k1")


BAD_MODULES = {
    "exits": "import sys\nsys.exit('bye')",
    "exits-0": "import sys\nsys.exit(0)",
    "cancels": "import asyncio\nraise asyncio.CancelledError('at import')",
    "generator-exit": "raise GeneratorExit('at import')",
    "getattr-exits": "def __getattr__(name):\n    raise SystemExit(5)",
    "object-exits": (
        "class H:\n    async def __call__(self, d): pass\n"
        "    def __getattribute__(self, n): raise SystemExit(4)\nh = H()"
    ),
}


@pytest.mark.parametrize("command", ["demo", "worker"])
@pytest.mark.parametrize("kind", list(BAD_MODULES))
def test_a_handler_module_that_exits_while_loading_is_a_usage_error(
    kind: str,
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--handler naming a module that calls sys.exit, raises CancelledError or
    GeneratorExit while importing, or whose handler lookup raises SystemExit: one line
    naming --handler and what was raised, exit 2 (was: exit 0, 4 or 5 with nothing said,
    or a traceback)."""
    from ccdash import cli

    name = "bad_" + kind.replace("-", "_")
    (tmp_path / f"{name}.py").write_text(BAD_MODULES[kind] + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["--demo", "--duration", "0.5"]
    if command == "worker":
        argv = ["worker", "--broker", "redis://127.0.0.1:1/0"]
    try:
        code: object = cli.main([*argv, "--handler", f"{name}:h"])
    except BaseException as exc:
        code = repr(exc)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("ccdash: error: --handler: "), err
    assert name in err and ("SystemExit" in err or "Error" in err or "Exit" in err), err


def test_the_keyboard_interrupt_of_asyncio_runs_sigint_handler_is_a_stop_request() -> None:
    """asyncio.run installs its SIGINT handler as a functools.partial of a bound method
    (Runner._on_sigint); its KeyboardInterrupt on a second Ctrl-C (the dashboard, a
    program using the Python API) is a real Ctrl-C, not the handler's own."""
    runner = asyncio.Runner()
    handler = functools.partial(runner._on_sigint, main_task=None)  # type: ignore[attr-defined]
    runner._interrupt_count = 1  # type: ignore[attr-defined]  # the next Ctrl-C raises
    previous = signal.signal(signal.SIGINT, handler)
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            signal.raise_signal(signal.SIGINT)
        # Judged while that handler is in effect, as a handler's error is in the run.
        assert is_stop_request(caught.value), "a real second Ctrl-C taken for the handler's own"
    finally:
        signal.signal(signal.SIGINT, previous)
        runner.close()


def test_a_ctrl_c_while_describing_a_handler_modules_error_still_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler module fails to import with an error whose str() is interrupted by a
    real Ctrl-C (Python's own SIGINT handler in effect): the Ctrl-C stops ccdash, as it
    does out of a handler's error (describe_error), not swallowed into a usage line."""
    from ccdash.handler_spec import load_handler

    (tmp_path / "bad_str_ctrl_c.py").write_text(
        "class Odd(Exception):\n"
        "    def __str__(self):\n"
        "        raise KeyboardInterrupt\n"
        "raise Odd()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        load_handler("bad_str_ctrl_c:h")
