"""`run_tui`: what `ccdash` (no --demo) runs: checks, builds the engine and the
scenario's workload, runs the dashboard, and reports what was left when it ends."""

from __future__ import annotations

import codecs
import contextlib
import sys
from typing import Any, TextIO, cast

from ccdash.brokers import is_redis_url, is_shared_url, redact_url
from ccdash.brokers.base import QueueStats
from ccdash.engine.snapshot import Snapshot
from ccdash.hangup import HangupSafe, tell
from ccdash.record.writer import Recorder
from ccdash.text import sanitize
from ccdash.tui.app import DashboardApp
from ccdash.tui.fleet_feed import FleetFeed
from ccdash.tui.themes import check_theme


def run_tui(
    scenario: Any = None,
    handler: Any = None,
    theme: str | None = None,
    seed: int | None = None,
    *,
    broker: str | None = None,
    metrics_port: int | None = None,
    log_file: str | None = None,
    record: str | None = None,
    record_bodies: bool = False,
    read_only: bool = False,
) -> int:
    """Open the dashboard on a scenario (None: the default one); returns the exit code.

    `broker` is a URL (None: memory; sqlite:///FILE.db keeps what is still queued;
    redis://... joins that fleet as one more worker and shows the other workers too);
    `metrics_port` serves Prometheus text on 127.0.0.1 during the run; `log_file` gets
    JSON lines; `record` records the session for `ccdash replay` (0600; bodies only with
    `record_bodies`); `read_only` refuses every key that would change something. Raises
    ValueError("unknown theme ...; available: ...") before starting if the theme is
    unknown (see `ccdash.tui.themes.check_theme`); BrokerError if the broker cannot be
    opened and OpsError if the port or the log file cannot (after the terminal is
    restored): the CLI turns both into one-line usage errors.
    """
    theme_name = check_theme(theme)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(
            "ccdash: error: the dashboard needs a terminal (no TTY here); "
            "try `ccdash --demo` for the headless run",
            file=sys.stderr,
        )
        return 2
    prepare_terminal()
    from ccdash.scenario import Workload, load_scenario

    if scenario is None:
        scenario = load_scenario(None)
    recorder = None
    if record is not None:
        name = str(getattr(scenario, "name", "") or "ccdash")
        recorder = Recorder.create(
            record,
            bodies=record_bodies,
            meta={"source": "dashboard", "scenario": name, "title": name, "seed": seed},
        )
    engine = scenario.make_engine(handler=handler, seed=seed, broker=broker)
    workload = Workload(scenario, engine, seed=seed)
    fleet = None
    if is_shared_url(broker):  # Redis, or a SQLite file other processes may open too
        workload.shared_url = broker  # drills ask the shared queue where messages went
    if is_redis_url(broker):
        # This process is one more worker of the fleet; the panes show the others too.
        fleet = FleetFeed(broker, getattr(engine.broker, "worker", ""))
    app = DashboardApp(
        engine,
        workload,
        theme=theme_name,
        title=str(getattr(scenario, "name", "") or "ccdash"),
        metrics_port=metrics_port,
        log_file=log_file,
        fleet=fleet,
        recorder=recorder,
        read_only=read_only,
        handle_signals=True,
    )
    code = app.run()
    if app.startup_error is not None:
        raise app.startup_error
    snap = engine.snapshot(max_leases=0, max_dead=0)
    tell(final_line(snap, engine.leftover, workload.purged, workload.stats_at_start))
    log_error = app.log_writer.error if app.log_writer is not None else None
    if log_error is not None:  # the dashboard went on without its log: say so, exit 2
        tell(f"ccdash: error: {sanitize(log_error, 500)}", sys.stderr)
    if recorder is not None:
        if recorder.error is not None:
            tell(f"ccdash: error: --record: {sanitize(recorder.error, 500)}", sys.stderr)
            return 2
        shown = sanitize(record, 200)
        tell(f"ccdash: recorded to {shown}; replay it with `ccdash replay {shown}`")
    if app.engine_error is not None:
        tell(
            f"ccdash: error: the engine failed: {sanitize(repr(app.engine_error), 500)}",
            sys.stderr,
        )
        return 1
    if log_error is not None:
        return 2
    return code if isinstance(code, int) else 0


def prepare_terminal() -> None:
    """The stream Textual draws on (sys.__stderr__), made fit for it. In an ASCII locale
    (LC_ALL=C with PYTHONUTF8=0) every border and bar became an escape ('\\u2500'): the
    terminal gets UTF-8 then, as Python itself assumes for a C locale (PEP 538)."""
    stream = sys.__stderr__
    with contextlib.suppress(AttributeError, LookupError, TypeError, ValueError, OSError):
        if stream is not None and codecs.lookup(stream.encoding).name != "utf-8":
            stream.flush()
            stream.reconfigure(encoding="utf-8")
    if stream is not None and not isinstance(stream, HangupSafe):
        # Textual's writer thread draws here: on a terminal that is gone (SIGHUP) a write
        # raised EIO and ended the thread, and the app's last writes then filled its
        # queue and blocked for ever. The output goes quiet instead.
        setattr(sys, "__stderr__", cast(TextIO, HangupSafe(stream)))  # noqa: B010


def final_line(snap: Snapshot, leftover: int, purged: int, start: QueueStats | None) -> str:
    """What `ccdash` prints after `q`: figures that add up to what was published. On a
    queue with a past (a shared Redis queue keeps lifetime counters) they are the
    queue's lifetime, labelled, after this run's own."""
    where = ""
    if leftover:
        where = (
            " (the memory broker's contents end with the process)"
            if snap.broker == "memory"
            else f" (they stay in {sanitize(redact_url(snap.broker), 200)})"
        )
    # Purged dead letters are neither acked nor in the DLQ: without them the figures
    # would not add up to what was published.
    gone = f", purged {purged}" if purged else ""
    life = ""
    if start is not None and (start.published or start.acked):
        life = (
            f"this run published {snap.published - start.published}, "
            f"acked {snap.acked - start.acked}; queue lifetime: "
        )
    return (
        f"ccdash: engine stopped. {life}published {snap.published}, acked {snap.acked}, "
        f"in the DLQ {snap.queue.dead}{gone}, still queued {leftover}{where}"
    )


__all__ = ["final_line", "run_tui", "prepare_terminal"]
