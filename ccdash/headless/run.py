"""Running a scenario headless: the run itself (`run_demo`) and the `ccdash --demo`
driver around it (log file, recording, plot, JSON report, exit status).

Ctrl-C or SIGTERM stops the run gracefully: publishing stops, the engine shuts
down in its two phases, and the report still comes out, marked interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import signal
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO, cast

from rich.console import Console

from ccdash import heap
from ccdash.aio import cancel_and_wait, first_error, run_bounded, run_within, stop_signals
from ccdash.brokers import is_redis_url, is_shared_url, redact_url
from ccdash.brokers.base import Broker, BrokerError
from ccdash.clock import Clock
from ccdash.engine import Engine, Event, Handler
from ccdash.files import write_private
from ccdash.hangup import HangupSafe
from ccdash.headless.views import LiveView, PlainView, View
from ccdash.ops import OpsError
from ccdash.ops.logfile import JsonLogWriter, open_log
from ccdash.ops.prometheus import MetricsServer, serve_metrics
from ccdash.record.session import RecordingSession
from ccdash.record.writer import Recorder
from ccdash.scenario import Scenario, Workload, exit_code
from ccdash.scenario.shared import settle_shared

SETTLE_DEADLINE = 30.0  # seconds to ask a shared broker what other workers finished


async def run_demo(
    scenario: Scenario,
    view: View,
    *,
    duration: float | None = None,
    seed: int | None = None,
    handler: Handler | None = None,
    broker: Broker | str | None = None,
    clock: Clock | None = None,
    handle_signals: bool = False,
    metrics_port: int | None = None,
    listeners: Sequence[Callable[[Event], None]] = (),
    recorder: Recorder | None = None,
    evidence: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run the scenario headless; returns the report.

    `broker` is a Broker or a URL (memory, sqlite:///FILE.db); a BrokerError (bad URL,
    a file that cannot be opened) comes out before anything is printed.
    `metrics_port` serves Prometheus text on 127.0.0.1 for the run (0: any free port,
    shown in a note); `listeners` see every engine event (a JsonLogWriter, say);
    `recorder` records the run (closed at the end, the report written into it) and
    `evidence` names the files written ({"recording": ..., "plot": ...}) in the report.
    """
    if seed is None:
        seed = scenario.seed if scenario.seed is not None else random.randrange(1, 2**31)
    engine = scenario.make_engine(clock=clock, handler=handler, seed=seed, broker=broker)
    for listener in listeners:
        engine.add_listener(listener)
    workload = Workload(scenario, engine, seed=seed)
    shared = broker if is_shared_url(broker) else None  # other processes may handle ours
    if shared is not None:
        workload.shared_url = shared
    rec = (
        None
        if recorder is None
        else RecordingSession(
            recorder,
            engine,
            drills=lambda: workload.drill_results,
            lost=workload.lost_now,
            evidence=evidence,
            meta={
                "source": "demo",
                "scenario": scenario.name,
                "title": scenario.name,
                "seed": seed,
            },
        )
    )
    server = None if metrics_port is None else await serve_metrics(engine, metrics_port)
    try:
        return await _run(
            scenario, view, engine, workload, duration, server, handle_signals, shared, rec
        )
    finally:
        if server is not None:
            await server.stop()


async def _run(
    scenario: Scenario,
    view: View,
    engine: Engine,
    workload: Workload,
    duration: float | None,
    server: MetricsServer | None,
    handle_signals: bool,
    shared: str | None = None,
    rec: RecordingSession | None = None,
) -> dict[str, Any]:
    await engine.start()  # a broker that cannot open fails here, before any output
    acked_before = engine.broker.stats().acked  # a shared queue's fleet-wide counter
    if shared is not None and not is_redis_url(shared):  # a SQLite file: its own counter,
        from ccdash.fleet.settle import locate  # not the broker's since-open view

        acked_before = (await locate(shared, ())).acked_total
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    failure: BaseException | None = None  # the broker or an engine task failed mid-run

    def on_signal(sig: signal.Signals) -> None:
        view.note(f"{sig.name}: stopping gracefully (press Ctrl-C again to force)")
        workload.stop(sig.name)
        loop.remove_signal_handler(sig)  # a second one acts at once

    heap.freeze()  # out of full collections for the run (ccdash.heap)
    try:
        view.begin(scenario, workload)
        if engine.broker.url != "memory":
            view.note(
                f"broker: {redact_url(engine.broker.url)} (what is still queued at the "
                "end stays there)"
            )
        if server is not None:
            view.note(f"metrics: http://{server.host}:{server.port}/metrics")
        if handle_signals:
            for sig in stop_signals():
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, on_signal, sig)
                    installed.append(sig)
        ticker = asyncio.ensure_future(_tick(view, workload, engine.clock))
        if rec is not None:
            rec.start()
        try:
            await workload.run(duration, on_event=rec.tee(view.event) if rec else view.event)
        except BrokerError as exc:  # a publish the broker could not store (disk full, I/O)
            failure = exc
        finally:
            await cancel_and_wait(engine.clock, [ticker], "the status ticker")
    finally:
        try:
            await engine.stop()
        except Exception as exc:  # an engine task failed: its broker's store (disk full), a bug
            failure = failure or exc
        finally:
            heap.thaw()
            for sig in installed:
                loop.remove_signal_handler(sig)
        if failure is not None:  # replaces the cancellation a failed engine task sent us
            raise RunFailed(_failure_text(failure)) from failure
    settled = shared is None or await run_within(  # bounded: Redis may not answer
        engine.clock,
        _settle(view, workload, shared, acked_before),
        SETTLE_DEADLINE,
        "settling with the fleet",
    )
    if not settled:
        view.note("gave up asking the shared queue which messages other workers acked")
    report = workload.report()
    if rec is not None:
        await rec.stop()
        rec.finish(report)
    view.end(report)
    return report


class RunFailed(Exception):
    """The run could not go on: its broker failed mid-run (the SQLite file's disk full,
    an I/O error) or a task of the engine crashed. What the broker accepted stays in
    it; the CLI prints the message on one line and exits 1 (the run had started)."""


def _failure_text(exc: BaseException) -> str:
    """What failed, in a line: the first error of an engine's task group."""
    exc = first_error(exc)
    if isinstance(exc, BrokerError):
        return f"the run stopped: {exc}"
    return f"the run stopped: the engine failed: {exc!r}"


def _evidence(recorder: Recorder, plot: str | None) -> str | None:
    """Draw the plot from what was recorded; why the recording or plot failed, if it did."""
    if recorder.error is not None:
        return f"--record: {recorder.error}"
    if plot is None:
        return None
    from ccdash.record.plot import PlotError, plot_recording
    from ccdash.record.reader import RecordingError, parse_recording, read_recording

    try:
        out = recorder.out
        rec = (
            read_recording(recorder.path)
            if recorder.path is not None
            else parse_recording(out.getvalue() if isinstance(out, io.BytesIO) else b"")
        )
        plot_recording(rec, plot)
    except (PlotError, RecordingError) as exc:
        return str(exc)
    return None


async def _settle(view: View, workload: Workload, url: str, acked_before: int) -> None:
    """Other workers sharing the queue handled some of our messages: ask it which."""
    from ccdash.fleet.connect import FleetConnectError

    try:
        n = await settle_shared(workload, url, acked_before)
    except (FleetConnectError, OSError, sqlite3.Error) as exc:
        view.note(f"cannot ask the shared queue which messages other workers acked: {exc}")
        return
    vanished = workload.ledger.unconfirmed  # gone from the queue with no ack to cover them
    if n - vanished:
        view.note(
            f"{n - vanished} of the workload's messages were acked by other workers "
            "sharing the queue"
        )
    if vanished:
        view.note(
            f"{vanished} of the workload's messages vanished from the queue without an ack "
            "in its counter (Redis lost its data?): counted lost"
        )


async def _tick(view: View, workload: Workload, clock: Clock) -> None:
    while True:
        view.status(workload.progress())
        await clock.sleep(view.status_every)


def run_headless(
    scenario: Scenario,
    *,
    duration: float | None = None,
    json_path: str | None = None,
    seed: int | None = None,
    handler: Handler | None = None,
    stream: TextIO | None = None,
    on_error: Callable[[str], None] | None = None,
    metrics_port: int | None = None,
    log_path: str | None = None,
    broker: str | None = None,
    record: str | None = None,
    record_bodies: bool = False,
    plot: str | None = None,
) -> int:
    """`ccdash --demo`: run, print, write the JSON; returns the exit status (2 when the
    log file cannot be opened or the metrics port cannot be listened on, or the
    recording or the plot cannot be written).

    `record` writes the run to that file (0600; message bodies only with
    `record_bodies`); `plot` draws its timeline there (svg/png/pdf). The report names both.

    `broker` is a URL (None: memory); a BrokerError at the start propagates (the CLI
    makes it a one-line usage error)."""
    out = cast(TextIO, HangupSafe(stream or sys.stdout))  # the run outlives its terminal
    error = on_error or print
    writer: JsonLogWriter | None = None
    if log_path:
        try:
            writer = open_log(log_path)
        except OpsError as exc:
            error(str(exc))
            return 2
    recorder: Recorder | None = None
    evidence = {k: v for k, v in (("recording", record), ("plot", plot)) if v}
    if record:  # the file is made with the first frame: a refused run leaves an old one
        recorder = Recorder.create(record, bodies=record_bodies)
    elif plot:
        recorder = Recorder.in_memory()
    view: View = LiveView(Console(file=out)) if out.isatty() else PlainView(out)
    try:
        report = run_bounded(
            run_demo(
                scenario,
                view,
                duration=duration,
                seed=seed,
                handler=handler,
                handle_signals=True,
                broker=broker,
                metrics_port=metrics_port,
                listeners=(writer,) if writer else (),
                recorder=recorder,
                evidence=evidence,
            )
        )
    except OpsError as exc:
        error(str(exc))
        return 2
    except RunFailed as exc:  # no report: the run ended before it could make one
        error(str(exc))
        return 1
    finally:
        if writer is not None:
            writer.close()
        if recorder is not None:
            recorder.finish()  # after a failed start nothing was written: no file made
    if recorder is not None and (problem := _evidence(recorder, plot)):
        error(problem)
        return 2
    if json_path:
        try:
            write_private(json_path, json.dumps(report, indent=2) + "\n")
        except OSError as exc:
            error(f"cannot write the report to {json_path}: {exc.strerror}")
            return 2
    if writer is not None and writer.error is not None:  # the run and its report went on
        error(writer.error)
        return 2
    return exit_code(report)
