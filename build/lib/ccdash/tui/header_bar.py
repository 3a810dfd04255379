"""The header: broker, balancer, autoscaler, pool size, throughput in/out and totals,
and where /metrics is served (if it is)."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from ccdash.engine.snapshot import Snapshot
from ccdash.tui import format as fmt
from ccdash.tui.format import Palette


class HeaderBar(Static):
    """Two lines of status, rebuilt from each snapshot (markup off)."""

    def __init__(self, palette: Palette, title: str, t0: float, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self.palette = palette
        self.title = title
        self.t0 = t0
        self.stopping = False
        self.metrics = ""  # host:port of /metrics, once served
        self._last: tuple[object, ...] = ()

    def update_from(self, snap: Snapshot) -> None:
        """Redraw if anything shown changed."""
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
            self.metrics,
            self.palette,
        )
        if key == self._last:
            return
        self._last = key
        p = self.palette
        label = Style(color=p.muted)
        value = Style(bold=True)
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        line.append(" ccdash ", Style(color=p.primary, bold=True, reverse=True))
        line.append(" ")
        line.append_text(fmt.untrusted(self.title, 24, Style(color=p.primary)))
        line.append("  " + fmt.clock_offset(snap.at - self.t0), label)
        for name, val, style in (
            ("broker", fmt.broker_url(snap.broker), value),
            ("balancer", snap.balancer, Style(color=p.accent, bold=True)),
            (
                "autoscale",
                "on" if snap.autoscale else "off",
                Style(color=p.ok if snap.autoscale else p.muted, bold=True),
            ),
            (
                "consumers",
                f"{snap.live_consumers}/{snap.desired_consumers}",
                Style(
                    color=p.ok if snap.live_consumers >= snap.desired_consumers else p.warn,
                    bold=True,
                ),
            ),
        ):
            line.append(f"  {name} ", label)
            line.append_text(fmt.untrusted(val, 40, style))
        if snap.paused:
            line.append("  PAUSED", Style(color=p.warn, bold=True, reverse=True))
        if self.stopping:
            line.append("  STOPPING…", Style(color=p.warn, bold=True))
        second = Text(no_wrap=True, overflow="ellipsis", end="")
        for name, val in (
            (" in", fmt.rate(snap.publish_rate)),
            ("out", fmt.rate(snap.ack_rate)),
            ("published", fmt.count(snap.published)),
            ("acked", fmt.count(snap.acked)),
            ("dead", fmt.count(snap.queue.dead)),
            ("redelivered", fmt.count(snap.redelivered)),
            ("failovers", str(snap.failovers)),
            ("p50", fmt.duration(snap.latency_p50)),
            ("p99", fmt.duration(snap.latency_p99)),
        ):
            second.append(f"{name} ", label)
            second.append(val + "  ", value)
        if self.metrics:
            second.append("metrics ", label)
            second.append(self.metrics, Style(color=p.info))
        both = Text("\n", no_wrap=True, overflow="ellipsis", end="").join([line, second])
        both.no_wrap, both.overflow = True, "ellipsis"
        self.update(both, layout=False)  # fixed height: no need to re-lay out the screen
