"""The header: the loss checker's count, pool size, rates and totals, then the rest
(broker, balancer, autoscaler, /metrics) as far as the width allows.

Each field has a priority: when the line is too narrow, the least important
fields go first, whole; a number is never cut.

The totals (published, acked, redelivered) are this run's on every broker: a queue
with a past (a shared Redis queue keeps lifetime counters) has its counters as the
dashboard first read them taken off, and its lifetime figures shown apart, labelled.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.widgets import Static

from ccdash.engine.snapshot import Snapshot
from ccdash.tui import format as fmt
from ccdash.tui.format import Palette

Field = tuple[int, Text]  # priority (lower = kept longer), the field's text


def fit(fields: list[Field], width: int, sep: str = "  ") -> Text:
    """The fields in order, dropping the least important ones until they fit `width`."""
    kept = list(fields)
    while kept:
        total = sum(t.cell_len for _, t in kept) + len(sep) * (len(kept) - 1)
        if total <= width or len(kept) == 1:
            break
        worst = max(range(len(kept)), key=lambda i: (kept[i][0], i))
        del kept[worst]
    line = Text(no_wrap=True, overflow="crop", end="")
    for i, (_, t) in enumerate(kept):
        if i:
            line.append(sep)
        line.append_text(t)
    return line


class HeaderBar(Static):
    """Two lines of status, rebuilt from each snapshot (markup off)."""

    def __init__(self, palette: Palette, title: str, t0: float, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self.palette = palette
        self.title = title
        self.t0 = t0
        self.stopping = False
        self.read_only = False
        self.metrics = ""  # host:port of /metrics, once served
        self.lost: int | None = None
        self.broker_down_at: float | None = None  # since when the broker cannot be read
        self._snap: Snapshot | None = None
        self._last: tuple[object, ...] = ()
        # The queue's (published, acked, redelivered) when first read, if it had a past.
        self.past: tuple[int, int, int] | None = None
        self._first = True

    def on_resize(self, event: events.Resize) -> None:
        """A new width keeps other fields."""
        self._last = ()
        if self._snap is not None:
            self.update_from(self._snap, self.lost)

    def _pair(self, name: str, value: str, style: Style) -> Text:
        text = Text(f"{name} ", Style(color=self.palette.muted), end="")
        text.append_text(fmt.untrusted(value, 40, style))
        return text

    def update_from(self, snap: Snapshot, lost: int | None = None) -> None:
        """Redraw if anything shown changed (`lost`: the loss checker's count, if any)."""
        self._snap, self.lost = snap, lost
        if self._first:  # the memory broker's counters begin with this process
            self._first = False
            if snap.broker != "memory" and (snap.published or snap.acked):
                self.past = (snap.published, snap.acked, snap.redelivered)
        published, acked, redelivered = snap.published, snap.acked, snap.redelivered
        if self.past is not None:
            published -= self.past[0]
            acked -= self.past[1]
            redelivered -= self.past[2]
        width = self.size.width or 200
        key = (
            snap.broker,
            snap.balancer,
            snap.autoscale,
            snap.paused,
            snap.live_consumers,
            snap.desired_consumers,
            round(snap.publish_rate),
            round(snap.ack_rate),
            snap.published,
            snap.acked,
            snap.queue.dead,
            snap.redelivered,
            snap.failovers,
            fmt.duration(snap.latency_p50),
            fmt.duration(snap.latency_p99),
            int(snap.at - self.t0),
            self.stopping,
            self.broker_down_at,
            self.read_only,
            self.metrics,
            self.palette,
            lost,
            width,
        )
        if key == self._last:
            return
        self._last = key
        p = self.palette
        bold = Style(bold=True)
        first: list[Field] = [
            (0, Text(" ccdash ", Style(color=p.primary, bold=True, reverse=True), end=""))
        ]
        if lost is not None:
            first.append(
                (
                    0,
                    self._pair(
                        "lost",
                        str(lost),
                        Style(color=p.ok if lost == 0 else p.bad, bold=True, reverse=lost > 0),
                    ),
                )
            )
        first.append(
            (
                1,
                self._pair(
                    "consumers",
                    f"{snap.live_consumers}/{snap.desired_consumers}",
                    Style(
                        color=p.ok if snap.live_consumers >= snap.desired_consumers else p.warn,
                        bold=True,
                    ),
                ),
            )
        )
        if self.read_only:
            first.append((0, Text("READ-ONLY", Style(color=p.info, bold=True, reverse=True))))
        if snap.paused:
            first.append((0, Text("PAUSED", Style(color=p.warn, bold=True, reverse=True))))
        if self.stopping:
            first.append((0, Text("STOPPING…", Style(color=p.warn, bold=True))))
        if self.broker_down_at is not None:  # every figure below is the last one read
            since = fmt.clock_offset(self.broker_down_at - self.t0)
            first.append(
                (0, Text(f"BROKER UNREACHABLE since {since}", Style(color=p.bad, reverse=True)))
            )
        first += [
            (3, Text(fmt.clock_offset(snap.at - self.t0), Style(color=p.muted))),
            (6, fmt.untrusted(self.title, 24, Style(color=p.primary))),
            (4, self._pair("balancer", snap.balancer, Style(color=p.accent, bold=True))),
            (
                5,
                self._pair(
                    "autoscale",
                    "on" if snap.autoscale else "off",
                    Style(color=p.ok if snap.autoscale else p.muted, bold=True),
                ),
            ),
            (7, self._pair("broker", fmt.broker_url(snap.broker), bold)),
        ]
        second: list[Field] = [
            (1, self._pair("in", fmt.rate(snap.publish_rate), bold)),
            (1, self._pair("out", fmt.rate(snap.ack_rate), bold)),
            (
                2,
                self._pair(
                    "dead",
                    fmt.count(snap.queue.dead),
                    Style(bold=True, color=p.bad if snap.queue.dead else None),
                ),
            ),
            (3, self._pair("p50", fmt.duration(snap.latency_p50), bold)),
            (3, self._pair("p99", fmt.duration(snap.latency_p99), bold)),
            (4, self._pair("failovers", str(snap.failovers), bold)),
            (5, self._pair("published", fmt.count(published), bold)),
            (5, self._pair("acked", fmt.count(acked), bold)),
            (6, self._pair("redelivered", fmt.count(redelivered), bold)),
        ]
        if self.past is not None:
            life = Text("queue lifetime ", Style(color=p.muted), end="")
            life.append_text(self._pair("published", fmt.count(snap.published), Style()))
            life.append_text(self._pair("  acked", fmt.count(snap.acked), Style()))
            second.append((8, life))
        if self.metrics:
            second.append((7, self._pair("metrics", self.metrics, Style(color=p.info))))
        both = Text("\n", no_wrap=True, overflow="crop", end="").join(
            [fit(first, width), Text(" ", end="") + fit(second, width - 1)]
        )
        self.update(both, layout=False)  # fixed height: no need to re-lay out the screen
