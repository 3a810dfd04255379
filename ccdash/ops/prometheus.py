"""Prometheus text exposition of an engine, served on 127.0.0.1 by default.

A custom collector takes a Snapshot of the engine when scraped (with its history:
all-time latencies), so the per-message path pays nothing for metrics. The HTTP
server runs on the engine's own event loop (no thread reading engine state while
the loop changes it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ccdash.engine import AlertState, ConsumerState, Severity
from ccdash.ops import OpsError

if TYPE_CHECKING:
    from ccdash.engine import Engine, Snapshot

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class EngineCollector:
    """Builds the metric families from the engine's counters at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        """Every ccdash metric, read now."""
        snap = self.engine.snapshot(max_leases=0, max_dead=0, max_alerts=1000, history=True)
        s = snap.queue
        counters: tuple[tuple[str, int, str], ...] = (
            ("ccdash_messages_published", snap.published, "Messages accepted for delivery."),
            ("ccdash_messages_acked", snap.acked, "Messages handled and acknowledged."),
            ("ccdash_messages_dead_lettered", snap.dead_lettered, "Dead-letter events."),
            ("ccdash_messages_redelivered", snap.redelivered, "Deliveries beyond the first."),
            ("ccdash_failovers", snap.failovers, "Consumers failed and failed over."),
        )
        for name, count, doc in counters:
            yield CounterMetricFamily(name, doc, value=count)
        gauges: tuple[tuple[str, float, str], ...] = (
            ("ccdash_queue_depth", s.depth, "Messages ready or waiting to retry."),
            ("ccdash_queue_ready", s.ready, "Messages ready for delivery now."),
            ("ccdash_queue_delayed", s.delayed, "Messages waiting out a retry backoff."),
            ("ccdash_leases_in_flight", s.in_flight, "Messages leased to a consumer."),
            ("ccdash_dead_letters", s.dead, "Messages in the dead-letter queue now."),
            (
                "ccdash_queue_oldest_ready_age_seconds",
                s.oldest_ready_age or 0.0,
                "Age of the oldest message ready for delivery (0 when none is ready).",
            ),
            ("ccdash_consumers_desired", snap.desired_consumers, "Pool size the engine aims for."),
            ("ccdash_event_loop_lag_seconds", snap.loop_lag, "How late the last health tick ran."),
        )
        for name, value, doc in gauges:
            yield GaugeMetricFamily(name, doc, value=value)
        states = GaugeMetricFamily("ccdash_consumers", "Consumers by state.", labels=["state"])
        counts = dict.fromkeys(ConsumerState, 0)
        for c in snap.consumers:
            counts[ConsumerState(c.state)] += 1
        for state, n in counts.items():
            states.add_metric([state], n)
        yield states
        yield _latency(snap)
        scaling = CounterMetricFamily(
            "ccdash_scaling_decisions", "Pool size changes.", labels=["direction", "reason"]
        )
        for direction, reason, n in snap.scaling_counts:
            scaling.add_metric([direction, reason], n)
        yield scaling
        firing = GaugeMetricFamily(
            "ccdash_alerts_firing", "Alerts firing now.", labels=["severity"]
        )
        sev = dict.fromkeys(Severity, 0)
        for a in snap.alerts:
            if a.state == AlertState.FIRING:
                sev[Severity(a.severity)] += 1
        for k, n in sev.items():
            firing.add_metric([k], n)
        yield firing


def _latency(snap: Snapshot) -> HistogramMetricFamily:
    """The all-time handler latencies in Prometheus' cumulative buckets."""
    totals = snap.latency_totals
    assert totals is not None  # a history snapshot has them
    buckets = []
    cumulative = 0
    i = 0
    edges = totals.buckets
    for le in LATENCY_BUCKETS:
        while i < len(edges) and edges[i][0] <= le:
            cumulative += edges[i][1]
            i += 1
        buckets.append((repr(le), cumulative))
    buckets.append(("+Inf", totals.count))
    return HistogramMetricFamily(
        "ccdash_handler_duration_seconds",
        "Handler run time per message.",
        buckets=buckets,
        sum_value=totals.total,
    )


MAX_LINE = 8 * 1024  # bytes in one request or header line
MAX_HEAD = 32 * 1024  # bytes in the whole request head
MAX_HEADERS = 100  # header lines
READ_TIMEOUT = 5.0  # seconds for the whole request head
TOO_LARGE = "431 Request Header Fields Too Large"
log = logging.getLogger("ccdash.metrics")


class MetricsServer:
    """`GET /metrics` on host:port, answered on the running event loop."""

    def __init__(self, engine: Engine, port: int, host: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EngineCollector(engine))
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; OSError (port in use, ...) propagates for the caller to report."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_LINE)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Whatever a client sends, it gets a status line and the connection closes; no
        # request can raise out of here (asyncio would print its traceback in the run's
        # output) or keep the endpoint from serving the next scrape.
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                status, body, ctype = await self._answer(reader)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass  # a client that went away or never finished its request
        except Exception:  # see above; logged without the request's text
            log.debug("metrics request failed", exc_info=True)
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, bytes, str]:
        """(status, body, content type) for one request read from `reader`."""
        plain = "text/plain; charset=utf-8"
        try:
            request = await reader.readuntil(b"\n")
            size, lines = len(request), 0
            while (line := await reader.readuntil(b"\n")) not in (b"\r\n", b"\n"):
                size, lines = size + len(line), lines + 1
                if size > MAX_HEAD or lines > MAX_HEADERS:
                    return TOO_LARGE, b"request header fields too large\n", plain
        except asyncio.LimitOverrunError:
            return TOO_LARGE, b"request header fields too large\n", plain
        except asyncio.IncompleteReadError:
            return "400 Bad Request", b"incomplete request\n", plain
        parts = request.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return "400 Bad Request", b"expected GET /metrics HTTP/1.1\n", plain
        if parts[0] != "GET":
            return "405 Method Not Allowed", b"only GET\n", plain
        if parts[1].split("?")[0] != "/metrics":
            return "404 Not Found", b"not found; try /metrics\n", plain
        return "200 OK", generate_latest(self.registry), CONTENT_TYPE_LATEST


async def serve_metrics(engine: Engine, port: int) -> MetricsServer:
    """A started MetricsServer on 127.0.0.1:`port` (0: any free port); OpsError naming
    `--metrics-port` if it cannot listen there."""
    server = MetricsServer(engine, port)
    try:
        await server.start()
    except OSError as exc:
        raise OpsError(
            f"--metrics-port: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}"
        ) from None
    return server
