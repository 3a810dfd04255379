"""`--plot F.svg`: a recorded run's timeline as a picture (matplotlib, no pyplot).

Four panels over seconds since the recording began: publish and ack rate,
queue depth and in flight, consumers live and wanted, p99 latency. Drills are
marked where they fired, each fault drill shaded from the fault to its
detection and on to its recovery; failovers, scaling decisions and alerts are
marked where they happened. SVG, PNG or PDF by the file's extension.

matplotlib is imported here only (and this module only when a plot is asked
for): it costs about half a second, which no engine or dashboard start pays.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ccdash.engine import EventKind
from ccdash.files import open_private_binary
from ccdash.record.reader import Recording
from ccdash.text import sanitize

FORMATS = ("svg", "png", "pdf")
DETECT_SHADE = "#f4a261"  # fault -> detected
RECOVER_SHADE = "#90be6d"  # detected -> recovered


class PlotError(Exception):
    """The plot cannot be drawn or written; the message is one line."""


def check_plot_path(path: str) -> None:
    """Before a run: the format is known, matplotlib is there, the directory writable."""
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise PlotError(f"--plot: {path!r} should end in .svg, .png or .pdf")
    if importlib.util.find_spec("matplotlib") is None:
        raise PlotError("--plot needs matplotlib: pip install 'ccdash[plot]'")
    parent = Path(path).parent
    if not parent.is_dir():
        raise PlotError(f"--plot: directory {str(parent)!r} does not exist")


def plot_recording(rec: Recording, path: str, *, title: str | None = None) -> None:
    """Draw `rec`'s timeline into `path` (PlotError if it cannot be written)."""
    check_plot_path(path)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True, height_ratios=(3, 3, 2, 2))
    _draw(rec, axes)
    # parse_math off for text from outside (a scenario named "$\\frac{$"): matplotlib
    # would read it as mathtext and fail the whole picture.
    fig.suptitle(sanitize(title or _title(rec), 120), fontsize=12, parse_math=False)
    axes[-1].set_xlabel("seconds since the recording began")
    ext = Path(path).suffix.lower().lstrip(".")
    # No date or random ids: the same recording gives the same file.
    metadata: dict[str, Any] = {"Date": None} if ext in ("svg", "pdf") else {}
    picture = io.BytesIO()  # drawn whole first: a failed drawing leaves no empty file
    try:
        with _deterministic_svg():
            fig.savefig(picture, format=ext, metadata=metadata)
    except (ValueError, RuntimeError, OverflowError) as exc:  # a drawing matplotlib refuses
        raise PlotError(f"--plot: cannot draw {path}: {sanitize(exc, 200)}") from None
    try:
        with open_private_binary(path) as fh:  # 0600, like the recording
            fh.write(picture.getvalue())
    except OSError as exc:
        raise PlotError(f"--plot: cannot write {path}: {exc.strerror or exc}") from None


def _title(rec: Recording) -> str:
    h, r = rec.header, rec.report or {}
    name = h.get("scenario") or h.get("title") or "ccdash run"
    parts = [f"ccdash {h.get('source', 'run')}: {name}"]
    if h.get("seed") is not None:
        parts.append(f"seed {h['seed']}")
    if r:
        parts.append(
            "result " + ("PASS" if r.get("ok") else "FAIL") + f", lost {r.get('lost', '?')}"
        )
    if rec.cut_short:
        parts.append("recording cut short")
    return " · ".join(parts)


def _draw(rec: Recording, axes: Any) -> None:
    s, t0 = rec.series, rec.t0
    x = [t - t0 for t in s.at]
    rates, queue, pool, lat = axes
    rates.plot(x, s.publish_rate, label="publish /s", color="#457b9d", lw=1.2)
    rates.plot(x, s.ack_rate, label="ack /s", color="#2a9d8f", lw=1.2)
    rates.set_ylabel("msg/s")
    queue.plot(x, s.depth, label="queue depth", color="#6a4c93", lw=1.2)
    queue.plot(x, s.in_flight, label="in flight", color="#e76f51", lw=1.2)
    queue.set_ylabel("messages")
    pool.step(x, s.live, where="post", label="consumers live", color="#264653", lw=1.4)
    pool.step(x, s.desired, where="post", label="wanted", color="#e9c46a", lw=1.2, ls="--")
    pool.set_ylabel("consumers")
    lat.plot(
        x,
        [float("nan") if v is None else v for v in s.p99_ms],
        label="p99",
        color="#d62828",
        lw=1.2,
    )
    lat.set_ylabel("p99 latency (ms)")
    shaded = _marks(rec, axes, t0)
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    if shaded:
        from matplotlib.patches import Patch

        handles, _ = queue.get_legend_handles_labels()
        queue.legend(
            handles=[
                *handles,
                Patch(color=DETECT_SHADE, alpha=0.5, label="drill: fault to detected"),
                Patch(color=RECOVER_SHADE, alpha=0.5, label="detected to recovered"),
            ],
            loc="upper right",
            fontsize=8,
            framealpha=0.8,
        )
    rates.set_xlim(0, max(x[-1], 1.0))


def _marks(rec: Recording, axes: Any, t0: float) -> bool:
    """Drills, failovers, scaling and alerts; whether any drill was shaded."""
    rates, _, pool, _ = axes
    top = rates.get_ylim()[1] or 1.0
    final = rec.drill_updates[-1][1] if rec.drill_updates else []
    shaded = False
    for d in final:
        fired = d.get("fired_at")
        if not isinstance(fired, int | float):
            continue
        at = fired - t0
        for ax in axes:
            ax.axvline(at, color="#333333", lw=0.8, ls=":")
        detected, recovered = d.get("detected_after_s"), d.get("recovered_after_s")
        if isinstance(detected, int | float):
            shaded = True
            for ax in axes:
                ax.axvspan(at, at + max(detected, 0.05), color=DETECT_SHADE, alpha=0.35, lw=0)
            if isinstance(recovered, int | float) and recovered > detected:
                for ax in axes:
                    ax.axvspan(at + detected, at + recovered, color=RECOVER_SHADE, alpha=0.3, lw=0)
        label = sanitize(f"{d.get('name') or d.get('action')} {d.get('verdict', '')}", 40)
        rates.annotate(
            label,
            (at, top),
            xytext=(2, -2),
            textcoords="offset points",
            rotation=90,
            va="top",
            fontsize=7,
            parse_math=False,
        )
    failed = [e.at - t0 for e in rec.events if e.kind == EventKind.CONSUMER_FAILED]
    replaced = [e.at - t0 for e in rec.events if e.kind == EventKind.CONSUMER_REPLACED]
    scaled = [e.at - t0 for e in rec.events if e.kind == EventKind.POOL_SCALED]
    alerts = [e.at - t0 for e in rec.events if e.kind == EventKind.ALERT_FIRING]
    ymax = max(max(rec.series.live, default=0), max(rec.series.desired, default=0), 1)
    if failed:
        pool.plot(
            failed, [ymax * 1.08] * len(failed), "x", color="#d62828", ms=7, label="consumer failed"
        )
    if replaced:
        pool.plot(
            replaced, [ymax * 1.08] * len(replaced), "+", color="#2a9d8f", ms=8, label="replaced"
        )
    if scaled:
        pool.plot(
            scaled,
            [ymax * 1.16] * len(scaled),
            "v",
            color="#6a4c93",
            ms=5,
            label="scaling decision",
        )
    if alerts:
        rates.plot(
            alerts, [top * 0.97] * len(alerts), "^", color="#f77f00", ms=6, label="alert fired"
        )
    pool.set_ylim(0, ymax * 1.25)
    return shaded


@contextlib.contextmanager
def _deterministic_svg() -> Iterator[None]:
    """SVG ids from a fixed salt, so an unchanged run plots to an unchanged file."""
    import matplotlib

    # Text stays text (searchable, a third of the size), ids come from a fixed salt.
    with matplotlib.rc_context({"svg.hashsalt": "ccdash", "svg.fonttype": "none"}):
        yield


__all__ = ["FORMATS", "PlotError", "check_plot_path", "plot_recording"]
