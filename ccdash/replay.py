"""`ccdash replay FILE`: a recording (`--record FILE`) in the dashboard, or its report
or plot.

    ccdash replay run.ccrec                  the dashboard, read-only, driven by the recording
    ccdash replay run.ccrec --report         the report the live run printed (and its exit status)
    ccdash replay run.ccrec --plot run.svg   the run's timeline, drills marked

A corrupt, truncated or newer-version file is one line `ccdash: error: ...`,
exit 2. A recording cut short (the run was killed) replays up to its last
complete record; it has no report to print.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ccdash.files import write_private
from ccdash.record.reader import Recording, RecordingError, read_recording


def build_parser() -> argparse.ArgumentParser:
    """The `ccdash replay` arguments."""
    p = argparse.ArgumentParser(prog="ccdash replay", description=__doc__.splitlines()[0])
    p.add_argument("file", metavar="FILE", help="a recording written with --record FILE")
    p.add_argument(
        "--report",
        action="store_true",
        help="print the run's report as the live run did, and exit with its status",
    )
    p.add_argument("--json", metavar="PATH", help="with --report: also write it as JSON")
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="draw the run's timeline to FILE.svg/.png/.pdf (needs matplotlib)",
    )
    p.add_argument("--theme", metavar="NAME", help="a theme from themes/ (dashboard)")
    return p


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Replay, report or plot; returns the exit status (usage problems raise UsageError)."""
    from ccdash.validate import UsageError, check_distinct_files, check_output_path, check_theme

    args = (parser or build_parser()).parse_args(list(sys.argv[1:] if argv is None else argv))
    check_distinct_files(
        [("the recording", args.file), ("--json", args.json), ("--plot", args.plot)]
    )
    if args.json is not None:
        if not args.report:
            raise UsageError("--json applies to --report; add it")
        check_output_path("--json", args.json)
    if args.plot is not None:
        from ccdash.record.plot import PlotError, check_plot_path

        check_output_path("--plot", args.plot)
        try:
            check_plot_path(args.plot)
        except PlotError as exc:
            raise UsageError(str(exc)) from None
    if args.theme is not None:
        check_theme(args.theme)
    try:
        rec = read_recording(args.file)
    except RecordingError as exc:
        raise UsageError(str(exc)) from None
    if args.plot is not None:
        _plot(rec, args.plot)
    if args.report:
        return _report(rec, args.json)
    if args.plot is not None:
        return 0
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            "the replay needs a terminal (no TTY here); print the run's report "
            "with --report or draw it with --plot F.svg"
        )
    from ccdash.tui.replay import run_replay

    return run_replay(rec, theme=args.theme)


def _plot(rec: Recording, path: str) -> None:
    from ccdash.cli import UsageError
    from ccdash.record.plot import PlotError, plot_recording

    try:
        plot_recording(rec, path)
    except PlotError as exc:
        raise UsageError(str(exc)) from None


def _report(rec: Recording, json_path: str | None) -> int:
    from ccdash.cli import UsageError
    from ccdash.headless.report import plain_report
    from ccdash.scenario.report import exit_code

    report = rec.report
    if report is None and not rec.cut_short:
        raise UsageError(
            f"{rec.path}: this recording holds no report (it was recorded from "
            f"the {rec.header.get('source', 'dashboard')}; --demo runs end with "
            "one); replay it or --plot it"
        )
    if report is None:
        ran = rec.end - rec.t0
        raise UsageError(
            f"{rec.path}: truncated recording: it stops at +{ran:.1f} s, before "
            "the run's report (the run was cut short); `ccdash replay "
            f"{rec.path}` shows what it holds"
        )
    try:
        text, code = plain_report(report), exit_code(report)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(
            f"{rec.path}: corrupt recording: its report is incomplete ({type(exc).__name__}: {exc})"
        ) from None
    print(text)
    if json_path is not None:
        try:
            write_private(json_path, json.dumps(report, indent=2) + "\n")
        except OSError as exc:
            raise UsageError(f"--json: cannot write {json_path}: {exc.strerror}") from None
    return code


__all__ = ["build_parser", "main"]
