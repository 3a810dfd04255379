"""The report of a headless run: its rows, as plain text and as Rich tables.

The plain text goes to pipes, CI logs and `ccdash replay --report`; the Rich
tables end a run on a terminal. Both are built from the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ccdash.scenario.drill_record import Verdict
from ccdash.text import sanitize  # untrusted text (handler errors) shown literally

# Characters of one value or note of the report at most. A report read back from a
# recording is outside input: every string of it is cut to this, besides sanitised.
CELL = 300


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


def _cells(rows: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Rows with every cell sanitised and cut to `CELL` characters."""
    return [tuple(sanitize(c, CELL) for c in row) for row in rows]


def result_word(report: dict[str, Any]) -> str:
    """PASS, FAIL or INTERRUPTED: the report's one verdict (`ok`) in a word."""
    if report["interrupted"]:
        return "INTERRUPTED"
    return "PASS" if report["ok"] else "FAIL"


def result_line(r: dict[str, Any]) -> str:
    """The report's closing line: the same verdict as its headline, with the reason."""
    word = result_word(r)
    if word == "INTERRUPTED":
        return f"result: INTERRUPTED by {sanitize(r['stopped_by'], 40)}; lost {r['lost']}"
    failed = [sanitize(c["name"], 80) for c in r["slo"] if not c["ok"]]
    skipped = [sanitize(c["name"], 80) for c in r.get("slo_not_judged") or []]
    aside = f"; {', '.join(skipped)} not judged (see why above)" if skipped else ""
    if word == "FAIL":
        return f"result: FAIL ({', '.join(failed) or 'the run'} failed{aside})"
    return f"result: PASS (nothing lost, every check held{aside})"


def summary_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value, note) rows of the report's headline numbers, each cut to `CELL`."""
    return [(a, b, c) for a, b, c in _cells(_summary(r))]


def _summary(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    lat = r["latency_ms"]
    planned = r["planned_duration_s"]
    planned_text = "open-ended" if planned is None else f"{planned:g} s"
    if r["interrupted"]:
        ran = f"of {planned_text} planned; stopped by {sanitize(r['stopped_by'], 40)}"
    else:
        drain = f", {r['drain_s']:.1f} s drain" if r.get("drain_s") is not None else ""
        ran = f"{planned_text} of load{drain}"
    return [
        ("ran", f"{r['duration_s']:.1f} s", ran),
        (
            "published",
            str(r["published"]),
            "by the workload, ids recorded"
            + (
                f"; {r['unconfirmed_publishes']} more not confirmed by the broker"
                if r.get("unconfirmed_publishes")
                else ""
            ),
        ),
        ("acked", str(r["acked"]), "handled successfully"),
        ("dead-lettered", str(r["dead_lettered"]), "in the DLQ at the end"),
        ("still queued", str(r["still_queued"]), "left in the broker"),
        ("lost", str(r["lost"]), "published, never handled, not dead, not queued"),
        ("duplicates", str(r["duplicates"]), "completions beyond the first per message"),
        ("redelivered", str(r["redelivered"]), "deliveries after the first, this run"),
        ("throughput", f"{r['throughput_per_s']:.1f} msg/s", "acked / run time"),
        (
            "latency",
            f"p50 {_ms(lat['p50'])} · p95 {_ms(lat['p95'])} · p99 {_ms(lat['p99'])} ms",
            "publish to handler done",
        ),
        *priority_rows(r),
        (
            "failovers",
            str(len(r["failovers"])),
            failover_note(r),
        ),
        ("scaling", str(len(r["scaling_events"])), scaling_note(r)),
        (
            "alerts",
            str(len(r["alerts"])),
            ", ".join(sorted({sanitize(a["name"], 80) for a in r["alerts"]})),
        ),
        *[(what, sanitize(r[key], 200), note) for key, what, note in EVIDENCE if r.get(key)],
        *extra_rows(r),
    ]


def priority_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Latency per priority, highest first, when the run had more than one priority
    (a blended figure hides what a priority mix is about)."""
    by = r.get("latency_ms_by_priority") or {}
    if len(by) < 2:
        return []
    return [
        (
            f"  priority {p}",
            f"p50 {_ms(q['p50'])} · p95 {_ms(q['p95'])} · p99 {_ms(q['p99'])} ms",
            "publish to handler done, this priority only",
        )
        for p, q in sorted(by.items(), key=lambda kv: -int(kv[0]))
    ]


def extra_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Rows shown only when there is something to say: loop stalls, a queue's lifetime."""
    rows = []
    stalls = r.get("loop_stalls") or []
    if stalls:
        worst = max(stalls, key=lambda st: st["seconds"])
        who = (
            f"worst {worst['seconds']:.1f} s by {worst['consumer']} handling {worst['message_id']}"
            if worst["consumer"]
            else f"worst {worst['seconds']:.1f} s, cause not seen"
        )
        where = f" at {worst['where']}" if worst["where"] else ""
        rows.append(
            (
                "loop stalls",
                str(len(stalls)),
                sanitize(f"{who}{where}; leases kept, no attempt charged", 200),
            )
        )
    life = r.get("queue_lifetime")
    if life:
        rows.append(
            (
                "queue lifetime",
                f"published {life['published']} · acked {life['acked']} · "
                f"redelivered {life['redelivered']} · in DLQ {life['in_dlq']}",
                "the queue's counters since it was created (all runs and workers)",
            )
        )
    return rows


EVIDENCE = (
    ("recording", "recording", "replay: ccdash replay FILE"),
    ("plot", "plot", "the run's timeline"),
)


def failover_note(r: dict[str, Any], shown: int = 12) -> str:
    """`c3 kill, c1 hang, ... (+2 more)`."""
    names = [sanitize(f"{f['consumer']} {f['action']}", 60) for f in r["failovers"][:shown]]
    more = len(r["failovers"]) - len(names)
    return ", ".join(names) + (f", ... (+{more} more)" if more > 0 else "")


def scaling_note(r: dict[str, Any], shown: int = 6) -> str:
    """`autoscaler: 31 decisions, peak 14; 4->8, 8->12, ... (+3 more)`."""
    moves = [sanitize(f"{e['from']}->{e['to']}", 20) for e in r["scaling_events"][: shown + 1]]
    more = len(r["scaling_events"]) - shown
    text = ", ".join(moves[:shown]) + (f", ... (+{more} more)" if more > 0 else "")
    auto = r.get("autoscaler") or {}
    if auto.get("enabled") or auto.get("changes"):
        head = f"autoscaler: {auto['decisions']} decisions, peak {auto['peak_consumers']}"
        text = f"{head}; {text}" if text else head
    return text


DRILL_HEADERS = ("at", "drill", "target", "detected", "recovered", "verdict", "detail")
_VERDICT_COLOURS: dict[str, str] = {
    Verdict.PASS: "green",
    Verdict.FAIL: "red",
    Verdict.SKIPPED: "yellow",
}
CHECK_HEADERS = ("check", "limit", "actual", "result")
NOT_JUDGED = "not judged"


def drill_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per drill, each cell cut to `CELL`."""
    return _cells(
        [
            (
                f"{d['at']:.1f} s",
                sanitize(d["name"], 80),
                sanitize(d["target"] or "-", 40),
                _s(d["detected_after_s"]),
                _s(d["recovered_after_s"]),
                d["verdict"],
                sanitize(d["detail"], CELL),
            )
            for d in r["drills"]
        ]
    )


def check_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per SLO/invariant check (those not judged last), each cell cut to `CELL`."""
    return _cells(
        [
            (
                f"{sanitize(c['name'], 80)} ({sanitize(c['text'], 200)})",
                _v(c["limit"]),
                _v(c["actual"]),
                NOT_JUDGED if "ok" not in c else "ok" if c["ok"] else "FAILED",
            )
            for c in [*r["slo"], *(r.get("slo_not_judged") or [])]
        ]
    )


def not_judged_lines(r: dict[str, Any]) -> list[str]:
    """Why each check not judged was not: `  min_throughput_per_s: the load ran 1.0 s; ...`."""
    return [sanitize(f"  {c['name']}: {c['why']}", CELL) for c in r.get("slo_not_judged") or []]


def plain_table(
    headers: tuple[str, ...] | None, rows: Sequence[tuple[str, ...]], indent: str = "  "
) -> list[str]:
    """Rows as aligned text columns."""
    all_rows = [*([headers] if headers else []), *rows]
    if not all_rows:
        return []
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(all_rows[0]))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in all_rows
    ]


def plain_report(r: dict[str, Any]) -> str:
    """The whole report as plain text."""
    lines = [
        f"ccdash demo report: {sanitize(r['scenario'], 200)} (seed {sanitize(r['seed'], 40)})  "
        f"result: {result_word(r)}",
        "",
    ]
    lines += plain_table(None, summary_rows(r))
    if r["drills"]:
        lines += ["", "drills"] + plain_table(DRILL_HEADERS, drill_rows(r))
    lines += ["", "checks"] + plain_table(CHECK_HEADERS, check_rows(r)) + not_judged_lines(r)
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
    parts: list[Any] = [
        Text.assemble(
            ("ccdash demo report: ", "bold"),
            sanitize(r["scenario"], 200),
            f" (seed {sanitize(r['seed'], 40)})  ",
            (word, style),
        ),
        head,
    ]
    if r["drills"]:
        t = Table(*DRILL_HEADERS, title="drills", title_justify="left")
        for row in drill_rows(r):
            colour = _VERDICT_COLOURS.get(row[5], "")
            t.add_row(*map(_cell, row[:5]), Text(row[5], style=colour), _cell(row[6]))
        parts.append(t)
    t = Table(*CHECK_HEADERS, title="checks", title_justify="left")
    for row in check_rows(r):
        colour = {"ok": "green", NOT_JUDGED: "yellow"}.get(row[3], "bold red")
        t.add_row(*map(_cell, row[:3]), Text(row[3], style=colour))
    parts.append(t)
    parts += [Text(line, style="yellow") for line in not_judged_lines(r)]
    return Group(*parts)
