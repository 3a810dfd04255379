"""`ccdash --demo`: run a scenario without the dashboard, then report.

On a terminal a Rich live view shows the run's progress; otherwise plain
timestamped lines. Either way the run ends with a report table (and, with
`--json PATH`, the report as JSON). Ctrl-C or SIGTERM stops the run
gracefully: publishing stops, the engine shuts down in its two phases, and the
report still comes out, marked interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ccdash.aio import cancel_and_wait, run_bounded, run_within
from ccdash.brokers import is_redis_url, redact_url
from ccdash.brokers.base import Broker
from ccdash.clock import Clock
from ccdash.engine import Engine, Event, EventKind, Handler
from ccdash.files import write_private
from ccdash.ops import OpsError
from ccdash.ops.logfile import JsonLogWriter, open_log
from ccdash.ops.prometheus import MetricsServer, serve_metrics
from ccdash.record.session import RecordingSession
from ccdash.record.writer import Recorder
from ccdash.scenario import Progress, Scenario, Workload, WorkloadEvent, exit_code
from ccdash.scenario.shared import settle_shared
from ccdash.text import sanitize  # untrusted text (handler errors) shown literally

SETTLE_DEADLINE = 30.0  # seconds to ask a shared broker what other workers finished
PLAIN_STATUS_EVERY = 2.0  # seconds between status lines without a terminal
LIVE_REFRESH_EVERY = 0.25


class View(Protocol):
    """Where a headless run shows itself."""

    status_every: float

    def begin(self, scenario: Scenario, workload: Workload) -> None: ...
    def event(self, ev: WorkloadEvent) -> None: ...
    def note(self, text: str) -> None: ...
    def status(self, p: Progress) -> None: ...
    def end(self, report: dict[str, Any]) -> None: ...


# -- the report as rows -------------------------------------------------------


def _s(x: float | None, unit: str = " s", digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}{unit}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _v(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:g}"
    return str(x)


def result_word(report: dict[str, Any]) -> str:
    """PASS, FAIL or INTERRUPTED: the report's one verdict (`ok`) in a word."""
    if report["interrupted"]:
        return "INTERRUPTED"
    return "PASS" if report["ok"] else "FAIL"


def result_line(r: dict[str, Any]) -> str:
    """The report's closing line: the same verdict as its headline, with the reason."""
    word = result_word(r)
    if word == "INTERRUPTED":
        return f"result: INTERRUPTED by {r['stopped_by']}; lost {r['lost']}"
    failed = [c["name"] for c in r["slo"] if not c["ok"]]
    if word == "FAIL":
        return f"result: FAIL ({', '.join(failed) or 'the run'} failed)"
    return "result: PASS (nothing lost, every check held)"


def summary_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value, note) rows of the report's headline numbers."""
    lat = r["latency_ms"]
    planned = r["planned_duration_s"]
    planned_text = "open-ended" if planned is None else f"{planned:g} s"
    if r["interrupted"]:
        ran = f"of {planned_text} planned; stopped by {r['stopped_by']}"
    else:
        drain = f", {r['drain_s']:.1f} s drain" if r.get("drain_s") is not None else ""
        ran = f"{planned_text} of load{drain}"
    return [
        ("ran", f"{r['duration_s']:.1f} s", ran),
        ("published", str(r["published"]), "by the workload, ids recorded" + (
            f"; {r['unconfirmed_publishes']} more not confirmed by the broker"
            if r.get("unconfirmed_publishes") else "")),
        ("acked", str(r["acked"]), "handled successfully"),
        ("dead-lettered", str(r["dead_lettered"]), "in the DLQ at the end"),
        ("still queued", str(r["still_queued"]), "left in the broker"),
        ("lost", str(r["lost"]), "published, never handled, not dead, not queued"),
        ("duplicates", str(r["duplicates"]), "completions beyond the first per message"),
        ("redelivered", str(r["redelivered"]), "deliveries after the first, this run"),
        ("throughput", f"{r['throughput_per_s']:.1f} msg/s", "acked / run time"),
        ("latency", f"p50 {_ms(lat['p50'])} · p95 {_ms(lat['p95'])} · p99 {_ms(lat['p99'])} ms",
         "publish to handler done"),
        *priority_rows(r),
        ("failovers", str(len(r["failovers"])),
         ", ".join(f"{f['consumer']} {f['action']}" for f in r["failovers"])),
        ("scaling", str(len(r["scaling_events"])), scaling_note(r)),
        ("alerts", str(len(r["alerts"])),
         ", ".join(sorted({sanitize(a["name"], 80) for a in r["alerts"]}))),
        *[(what, sanitize(r[key], 200), note) for key, what, note in EVIDENCE if r.get(key)],
        *extra_rows(r),
    ]


def priority_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Latency per priority, highest first, when the run had more than one priority
    (a blended figure hides what a priority mix is about)."""
    by = r.get("latency_ms_by_priority") or {}
    if len(by) < 2:
        return []
    return [(f"  priority {p}", f"p50 {_ms(q['p50'])} · p95 {_ms(q['p95'])} · "
             f"p99 {_ms(q['p99'])} ms", "publish to handler done, this priority only")
            for p, q in sorted(by.items(), key=lambda kv: -int(kv[0]))]


def extra_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Rows shown only when there is something to say: loop stalls, a queue's lifetime."""
    rows = []
    stalls = r.get("loop_stalls") or []
    if stalls:
        worst = max(stalls, key=lambda st: st["seconds"])
        who = (f"worst {worst['seconds']:.1f} s by {worst['consumer']} handling "
               f"{worst['message_id']}" if worst["consumer"] else
               f"worst {worst['seconds']:.1f} s, cause not seen")
        where = f" at {worst['where']}" if worst["where"] else ""
        rows.append(("loop stalls", str(len(stalls)),
                     sanitize(f"{who}{where}; leases kept, no attempt charged", 200)))
    life = r.get("queue_lifetime")
    if life:
        rows.append(("queue lifetime",
                     f"published {life['published']} · acked {life['acked']} · "
                     f"redelivered {life['redelivered']} · in DLQ {life['in_dlq']}",
                     "the queue's counters since it was created (all runs and workers)"))
    return rows


EVIDENCE = (("recording", "recording", "replay: ccdash replay FILE"),
            ("plot", "plot", "the run's timeline"))


def scaling_note(r: dict[str, Any], shown: int = 6) -> str:
    """`autoscaler: 31 decisions, peak 14; 4->8, 8->12, ... (+3 more)`."""
    moves = [f"{e['from']}->{e['to']}" for e in r["scaling_events"]]
    text = ", ".join(moves[:shown]) + (f", ... (+{len(moves) - shown} more)"
                                       if len(moves) > shown else "")
    auto = r.get("autoscaler") or {}
    if auto.get("enabled") or auto.get("changes"):
        head = f"autoscaler: {auto['decisions']} decisions, peak {auto['peak_consumers']}"
        text = f"{head}; {text}" if text else head
    return text


DRILL_HEADERS = ("at", "drill", "target", "detected", "recovered", "verdict", "detail")
CHECK_HEADERS = ("check", "limit", "actual", "result")


def drill_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per drill."""
    return [(f"{d['at']:.1f} s", sanitize(d["name"], 80), sanitize(d["target"] or "-", 40),
             _s(d["detected_after_s"]),
             _s(d["recovered_after_s"]), d["verdict"], sanitize(d["detail"]))
            for d in r["drills"]]


def check_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per SLO/invariant check."""
    return [(f"{c['name']} ({c['text']})", _v(c["limit"]), _v(c["actual"]),
             "ok" if c["ok"] else "FAILED") for c in r["slo"]]


def plain_table(headers: tuple[str, ...] | None, rows: Sequence[tuple[str, ...]],
                indent: str = "  ") -> list[str]:
    """Rows as aligned text columns."""
    all_rows = [*([headers] if headers else []), *rows]
    if not all_rows:
        return []
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(all_rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in all_rows]


def plain_report(r: dict[str, Any]) -> str:
    """The whole report as plain text."""
    lines = [f"ccdash demo report: {sanitize(r['scenario'], 200)} (seed {r['seed']})  "
             f"result: {result_word(r)}", ""]
    lines += plain_table(None, summary_rows(r))
    if r["drills"]:
        lines += ["", "drills"] + plain_table(DRILL_HEADERS, drill_rows(r))
    lines += ["", "checks"] + plain_table(CHECK_HEADERS, check_rows(r))
    lines += ["", result_line(r)]
    return sanitize("\n".join(lines), keep="\n")  # a report may come from a recording


def _cell(text: str) -> Text:
    """A table cell: sanitised, and a Text so Rich reads no markup in it."""
    return Text(sanitize(text))


def rich_report(r: dict[str, Any]) -> Group:
    """The whole report as Rich tables."""
    word = result_word(r)
    style = {"PASS": "bold green", "FAIL": "bold red"}.get(word, "bold yellow")
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(justify="right")
    head.add_column(style="dim")
    for label, value, note in summary_rows(r):
        bad = label == "lost" and r["lost"]
        head.add_row(label, Text(value, style="bold red" if bad else ""), _cell(note))
    parts: list[Any] = [Text.assemble(("ccdash demo report: ", "bold"),
                                      sanitize(r["scenario"], 200),
                                      f" (seed {r['seed']})  ", (word, style)), head]
    if r["drills"]:
        t = Table(*DRILL_HEADERS, title="drills", title_justify="left")
        for row in drill_rows(r):
            colour = {"pass": "green", "fail": "red", "skipped": "yellow"}.get(row[5], "")
            t.add_row(*map(_cell, row[:5]), Text(row[5], style=colour), _cell(row[6]))
        parts.append(t)
    t = Table(*CHECK_HEADERS, title="checks", title_justify="left")
    for row in check_rows(r):
        t.add_row(*map(_cell, row[:3]),
                  Text(row[3], style="green" if row[3] == "ok" else "bold red"))
    parts.append(t)
    return Group(*parts)


# -- views -------------------------------------------------------------------------


class PlainView:
    """Timestamped lines, for pipes, CI logs and ssh without a terminal."""

    status_every = PLAIN_STATUS_EVERY

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def _print(self, text: str) -> None:
        # The one way out: whatever the text holds (a scenario's name, a handler's
        # error, a broker path), nothing reaches the stream that could act on a terminal.
        print(sanitize(text, keep="\n"), file=self.stream, flush=True)

    def _line(self, at: float, text: str) -> None:
        self._print(f"[+{at:7.2f}s] {text}")

    def begin(self, scenario: Scenario, workload: Workload) -> None:
        """The header: what runs, with which seed."""
        self._print(f"ccdash --demo: {sanitize(scenario.name, 200)} (seed {workload.seed}) - "
                    f"{sanitize(scenario.description, 500)}")

    def event(self, ev: WorkloadEvent) -> None:
        """One line per event."""
        self._line(ev.at, sanitize(ev.message))

    def note(self, text: str) -> None:
        """A line from the runner itself."""
        self._print(text)

    def status(self, p: Progress) -> None:
        """A status line every few seconds."""
        self._line(p.elapsed, f"{p.phase}: published {p.published}, acked {p.completed}, "
                              f"queue {p.depth}, in flight {p.in_flight}, DLQ {p.dead}, "
                              f"consumers {p.consumers_up} up / {p.consumers_failed} failed, "
                              f"{p.ack_rate:.0f} msg/s")

    def end(self, report: dict[str, Any]) -> None:
        """The report table."""
        self._print("\n" + plain_report(report))


class LiveView:
    """A Rich live panel on a terminal: time, throughput, queue, consumers, drills."""

    status_every = LIVE_REFRESH_EVERY

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = Live(console=console, refresh_per_second=8, transient=True)
        self.recent: deque[WorkloadEvent] = deque(maxlen=6)
        self.title = ""

    def begin(self, scenario: Scenario, workload: Workload) -> None:
        """Print the header and start the live panel."""
        self.title = f"{sanitize(scenario.name, 200)} (seed {workload.seed})"
        self.console.print(Text.assemble(("ccdash --demo: ", "bold"), self.title, " - ",
                                         (sanitize(scenario.description, 500), "dim")))
        self.live.start()

    def event(self, ev: WorkloadEvent) -> None:
        """Drills and failures stay printed above the panel; all go to the recent list."""
        self.recent.append(ev)
        drill = ev.kind.startswith("drill-")
        if drill or ev.kind in (EventKind.CONSUMER_FAILED, EventKind.CONSUMER_REPLACED,
                                "run-started", "run-ended", "draining"):
            style = "bold" if drill else ""
            self.console.print(Text(f"[+{ev.at:7.2f}s] {sanitize(ev.message)}", style=style))

    def note(self, text: str) -> None:
        """A message from the runner."""
        self.console.print(Text(sanitize(text), style="yellow"))

    def status(self, p: Progress) -> None:
        """Redraw the panel."""
        grid = Table.grid(padding=(0, 2))
        for _ in range(4):
            grid.add_column()
        total = p.duration if p.duration != float("inf") else max(p.elapsed, 1.0)
        grid.add_row("time", f"{min(p.elapsed, total):.1f} / {total:g} s", "phase", p.phase)
        grid.add_row("published", str(p.published), "acked", str(p.completed))
        grid.add_row("throughput", f"{p.ack_rate:.0f} msg/s", "queue",
                     f"{p.depth} waiting, {p.in_flight} in flight")
        grid.add_row("consumers", f"{p.consumers_up} up, {p.consumers_failed} failed", "DLQ",
                     str(p.dead))
        grid.add_row("drills", f"{p.drills_fired} fired of {p.drills_planned} planned", "", "")
        events = Text("\n".join(f"+{e.at:6.2f}s {sanitize(e.message)}" for e in self.recent),
                      style="dim", overflow="ellipsis", no_wrap=True)
        bar = ProgressBar(total=total, completed=min(p.elapsed, total))
        self.live.update(Panel(Group(bar, grid, events), title=Text(self.title)))

    def end(self, report: dict[str, Any]) -> None:
        """Stop the panel; print the report tables."""
        self.live.stop()
        self.console.print(rich_report(report))


# -- running -----------------------------------------------------------------------


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
    shared = broker if is_redis_url(broker) else None
    if shared is not None:
        workload.shared_url = shared
    rec = None if recorder is None else RecordingSession(
        recorder, engine, drills=lambda: workload.drill_results, lost=workload.lost_now,
        evidence=evidence,
        meta={"source": "demo", "scenario": scenario.name, "title": scenario.name,
              "seed": seed})
    server = None if metrics_port is None else await serve_metrics(engine, metrics_port)
    try:
        return await _run(scenario, view, engine, workload, duration, server, handle_signals,
                          shared, rec)
    finally:
        if server is not None:
            await server.stop()


async def _run(scenario: Scenario, view: View, engine: Engine, workload: Workload,
               duration: float | None, server: MetricsServer | None,
               handle_signals: bool, shared: str | None = None,
               rec: RecordingSession | None = None) -> dict[str, Any]:
    await engine.start()  # a broker that cannot open fails here, before any output
    acked_before = engine.broker.stats().acked  # a shared queue's fleet-wide counter
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        view.note(f"{sig.name}: stopping gracefully (press Ctrl-C again to force)")
        workload.stop(sig.name)
        loop.remove_signal_handler(sig)  # a second one acts at once

    try:
        view.begin(scenario, workload)
        if engine.broker.url != "memory":
            view.note(f"broker: {redact_url(engine.broker.url)} (what is still queued at the "
                      "end stays there)")
        if server is not None:
            view.note(f"metrics: http://{server.host}:{server.port}/metrics")
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, on_signal, sig)
                    installed.append(sig)
        ticker = asyncio.ensure_future(_tick(view, workload, engine.clock))
        if rec is not None:
            rec.start()
        try:
            await workload.run(duration, on_event=rec.tee(view.event) if rec else view.event)
        finally:
            await cancel_and_wait(engine.clock, [ticker], "the status ticker")
    finally:
        try:
            await engine.stop()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
    settled = shared is None or await run_within(  # bounded: Redis may not answer
        engine.clock, _settle(view, workload, shared, acked_before), SETTLE_DEADLINE,
        "settling with the fleet")
    if not settled:
        view.note("gave up asking Redis which messages other workers acked")
    report = workload.report()
    if rec is not None:
        await rec.stop()
        rec.finish(report)
    view.end(report)
    return report


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
        rec = (read_recording(recorder.path) if recorder.path is not None
               else parse_recording(out.getvalue() if isinstance(out, io.BytesIO) else b""))
        plot_recording(rec, plot)
    except (PlotError, RecordingError) as exc:
        return str(exc)
    return None


async def _settle(view: View, workload: Workload, url: str, acked_before: int) -> None:
    """A fleet's other workers handled some of our messages: ask the broker which."""
    from ccdash.fleet.connect import FleetConnectError

    try:
        n = await settle_shared(workload, url, acked_before)
    except (FleetConnectError, OSError) as exc:
        view.note(f"cannot ask Redis which messages other workers acked: {exc}")
        return
    if n:
        view.note(f"{n} of the workload's messages were acked by other workers of the fleet")


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
    out = stream or sys.stdout
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
    try:
        if record:
            recorder = Recorder.create(record, bodies=record_bodies)
        elif plot:
            recorder = Recorder.in_memory()
    except OSError as exc:
        error(f"--record: cannot write to {record}: {exc.strerror or exc}")
        return 2
    view: View = LiveView(Console(file=out)) if out.isatty() else PlainView(out)
    try:
        report = run_bounded(run_demo(
            scenario, view, duration=duration, seed=seed, handler=handler, handle_signals=True,
            broker=broker, metrics_port=metrics_port, listeners=(writer,) if writer else (),
            recorder=recorder, evidence=evidence))
    except OpsError as exc:
        error(str(exc))
        return 2
    finally:
        if writer is not None:
            writer.close()
        if recorder is not None:
            recorder.finish()  # after a failed start: the header-less file is closed
    if recorder is not None and (problem := _evidence(recorder, plot)):
        error(problem)
        return 2
    if json_path:
        try:
            write_private(json_path, json.dumps(report, indent=2) + "\n")
        except OSError as exc:
            error(f"cannot write the report to {json_path}: {exc.strerror}")
            return 2
    return exit_code(report)
