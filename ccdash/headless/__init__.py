"""`ccdash --demo`: run a scenario without the dashboard, then report.

On a terminal a Rich live view shows the run's progress; otherwise plain
timestamped lines. Either way the run ends with a report table (and, with
`--json PATH`, the report as JSON). Ctrl-C or SIGTERM stops the run
gracefully: publishing stops, the engine shuts down in its two phases, and the
report still comes out, marked interrupted.

The parts: `report` (the report's rows, plain and Rich), `views` (plain lines
or the live panel), `run` (the run and the `--demo` driver around it).
"""

from __future__ import annotations

from ccdash.headless.report import (
    CHECK_HEADERS,
    DRILL_HEADERS,
    EVIDENCE,
    check_rows,
    drill_rows,
    extra_rows,
    plain_report,
    plain_table,
    priority_rows,
    result_line,
    result_word,
    rich_report,
    scaling_note,
    summary_rows,
)
from ccdash.headless.run import SETTLE_DEADLINE, run_demo, run_headless
from ccdash.headless.views import LIVE_REFRESH_EVERY, PLAIN_STATUS_EVERY, LiveView, PlainView, View

__all__ = [
    "CHECK_HEADERS",
    "DRILL_HEADERS",
    "EVIDENCE",
    "LIVE_REFRESH_EVERY",
    "PLAIN_STATUS_EVERY",
    "SETTLE_DEADLINE",
    "LiveView",
    "PlainView",
    "View",
    "check_rows",
    "drill_rows",
    "extra_rows",
    "plain_report",
    "plain_table",
    "priority_rows",
    "result_line",
    "result_word",
    "rich_report",
    "run_demo",
    "run_headless",
    "scaling_note",
    "summary_rows",
]
