"""`--record FILE`: a run written as an append-only, versioned stream.

The file is one gzip member of JSON lines: a header (format name and
version, what ran), then frames (delta-encoded snapshots, see codec.py),
events, operator actions, drill records, and at the end the report and an end
marker. Every batch is written with a zlib sync flush, so a run killed at any
moment leaves a file that decompresses up to its last complete batch. The
file is created owner-only (0600) whatever the umask: dead letters' error
texts and, with `bodies=True`, message bodies are message data.

The recorder reads snapshots and events through the engine's public API only
and never slows it down: the engine listener only buffers; encoding happens on
the frame tick. A write that fails (disk full) stops the recording, not the run;
`error` says why.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, BinaryIO

from ccdash import __version__
from ccdash.clock import Clock
from ccdash.engine.events import ALERT_EVENTS, DRILL_EVENTS, EventKind
from ccdash.engine.snapshot import Event, Snapshot
from ccdash.files import open_private_binary
from ccdash.record.codec import SnapshotEncoder

FORMAT = "ccdash-recording"
VERSION = 1
FRAME_INTERVAL = 0.25  # seconds between frames: the dashboard's refresh rate
DETAIL_EVERY = 1.0  # seconds between samples of the consumer and lease tables
# Events after which the next frame carries the consumer and lease tables whatever
# the sampling says: the moments an operator scrubs to.
DETAIL_EVENTS = frozenset(
    {
        EventKind.CONSUMER_STARTED,
        EventKind.CONSUMER_READY,
        EventKind.CONSUMER_STOPPED,
        EventKind.CONSUMER_FAILED,
        EventKind.CONSUMER_REPLACED,
        EventKind.CONSUMER_HUNG,
        EventKind.CONSUMER_SLOWED,
        EventKind.POOL_SCALED,
        EventKind.LEASE_EXPIRED,
        EventKind.ROLLING_UPDATE_STARTED,
        EventKind.ROLLING_UPDATE_FINISHED,
        EventKind.DLQ_REDRIVEN,
        EventKind.DLQ_PURGED,
        *ALERT_EVENTS,
        *DRILL_EVENTS,
    }
)


def _drill_dict(r: Any) -> dict[str, Any]:
    """A drill record (an object with to_dict, or a mapping) as plain data."""
    to_dict = getattr(r, "to_dict", None)
    d = dict(to_dict()) if callable(to_dict) else dict(r)
    fired = getattr(r, "fired_at", None)
    if isinstance(fired, int | float):
        d["fired_at"] = round(float(fired), 6)
    return d


class _FileOnFirstWrite:
    """The recording's file, created 0600 (replacing what was at the path) only when
    the first bytes are written: a run refused before it starts (a broker that cannot
    be opened, a worker name in use) leaves an old recording there as it was."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file: BinaryIO | None = None

    def write(self, data: bytes) -> int:
        if self.file is None:  # on the event loop: never wait for a pipe's reader
            self.file = open_private_binary(self.path, wait=False)
        return self.file.write(data)

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class Recorder:
    """Writes one run to `out` (a binary stream); see the module docstring."""

    def __init__(
        self,
        out: BinaryIO | _FileOnFirstWrite,
        *,
        path: str | None = None,
        bodies: bool = False,
        interval: float = FRAME_INTERVAL,
        detail_every: float = DETAIL_EVERY,
        meta: Mapping[str, Any] | None = None,
        close_out: bool = True,
    ) -> None:
        """`close_out=False` leaves `out` open at the end (an in-memory buffer to read)."""
        self.out = out
        self.close_out = close_out
        self.path = path
        self.bodies = bodies
        self.interval = interval
        self.meta = dict(meta or {})
        self.error: str | None = None  # why the recording stopped early, if it did
        self.frames = 0
        self.started = False
        self.closed = False
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip member
        self._enc = SnapshotEncoder(bodies=bodies, detail_every=detail_every)
        self._pending: list[dict[str, Any]] = []
        self._events: list[Event] = []
        self._force_detail = False
        self._drills: list[dict[str, Any]] = []
        self._drill_event_at: float | None = None  # the first drill step not yet written

    @classmethod
    def create(cls, path: str, **kw: Any) -> Recorder:
        """A recorder writing a new 0600 file at `path`, made when the run's first frame
        is written (the path is checked beforehand, `validate.check_output_path`; a
        failure to create it then stops the recording, never the run)."""
        return cls(_FileOnFirstWrite(path), path=path, **kw)

    # -- what the run tells it ---------------------------------------------------

    def on_event(self, ev: Event) -> None:
        """Engine listener: buffer only (it runs inside engine code); nothing once the
        recording has ended or failed."""
        if self.closed:
            return
        self._events.append(ev)
        if ev.kind in DETAIL_EVENTS:
            self._force_detail = True
        if ev.kind in DRILL_EVENTS and self._drill_event_at is None:
            self._drill_event_at = ev.at

    def workload_event(
        self, at: float, kind: str, message: str, fields: Sequence[tuple[str, Any]] = ()
    ) -> None:
        """An event of the run itself (started, draining, ended), not of the engine."""
        self._flush_events()
        self._pending.append(
            {
                "t": "e",
                "at": round(at, 6),
                "n": None,
                "k": kind,
                "m": message,
                "f": dict(fields),
                "s": "workload",
            }
        )

    def operator(self, at: float, message: str, *, error: bool = False) -> None:
        """An operator's command as the dashboard confirmed it (or refused it)."""
        self._flush_events()
        self._pending.append({"t": "o", "at": round(at, 6), "m": message, "err": error})
        self._force_detail = True

    def drills(self, records: Sequence[Any], at: float) -> None:
        """The drill records now; written when they changed, stamped with the drill step
        that changed them (so a replay that jumps to that step shows them)."""
        now = [_drill_dict(r) for r in records]
        step, self._drill_event_at = self._drill_event_at, None
        if now != self._drills:
            self._drills = now
            self._flush_events()
            when = at if step is None else min(step, at)
            self._pending.append({"t": "d", "at": round(when, 6), "d": now})

    def frame(
        self, snap: Snapshot, drills: Sequence[Any] | None = None, lost: int | None = None
    ) -> None:
        """Write the buffered events and one frame of `snap` (the header first, once);
        `drills`: the drill records now; `lost`: the loss checker's count now, if known."""
        if self.closed:
            return
        try:
            if not self.started:
                self._header(snap.at)
            if drills is not None:
                self.drills(drills, snap.at)
            self._flush_events()
            force, self._force_detail = self._force_detail, False
            self._pending.append(self._enc.encode(snap, force_detail=force, lost=lost))
        except Exception as exc:  # a bug here must stop the recording, never the run
            self._failed(exc, "recording a frame")
            return
        self.frames += 1
        self._write()

    async def run(
        self,
        snapshot: Callable[[], Snapshot],
        clock: Clock,
        drills: Callable[[], Sequence[Any]] | None = None,
        lost: Callable[[], int] | None = None,
    ) -> None:
        """A frame every `interval` seconds of `clock`, until cancelled (headless, worker).
        `lost` (a full check, not cheap on a long run) is asked once per detail interval."""
        next_lost = -math.inf
        while not self.closed:
            snap = snapshot()
            count = None
            if lost is not None and snap.at >= next_lost:
                count, next_lost = lost(), snap.at + self._enc.detail_every
            self.frame(snap, drills() if drills is not None else None, count)
            await clock.sleep(self.interval)

    def finish(
        self,
        snap: Snapshot | None = None,
        report: Mapping[str, Any] | None = None,
        drills: Sequence[Any] | None = None,
        lost: int | None = None,
    ) -> None:
        """A last frame, the report (if any) and the end marker; then close the file."""
        if self.closed:
            return
        if snap is not None:
            self._force_detail = True
            self.frame(snap, drills, lost)
        self._flush_events()
        if report is not None:
            self._pending.append({"t": "r", "report": dict(report)})
        if self.started:
            self._pending.append({"t": "z"})
            self._write()
        try:
            if self.error is None and not (  # nothing recorded: no file made, none replaced
                isinstance(self.out, _FileOnFirstWrite) and self.out.file is None
            ):
                tail = self._z.flush()
                self.out.write(tail)
        except (OSError, ValueError) as exc:
            self._failed(exc)
        finally:
            self.closed = True
            if self.close_out:
                with contextlib.suppress(OSError):
                    self.out.close()

    # -- writing -------------------------------------------------------------------

    def _header(self, at: float) -> None:
        self.started = True
        self._pending.insert(
            0,
            {
                "t": "h",
                "format": FORMAT,
                "v": VERSION,
                "ccdash": __version__,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "t0": round(at, 6),
                "interval": self.interval,
                "detail_every": self._enc.detail_every,
                "bodies": self.bodies,
                **self.meta,
            },
        )

    def _flush_events(self) -> None:
        for ev in self._events:
            self._pending.append(
                {
                    "t": "e",
                    "at": round(ev.at, 6),
                    "n": ev.seq,
                    "k": ev.kind,
                    "m": ev.message,
                    "f": dict(ev.fields),
                    "s": "engine",
                }
            )
        self._events.clear()

    def _write(self) -> None:
        if self.error is not None or not self._pending:
            self._pending.clear()
            return
        data = b"".join(
            json.dumps(r, separators=(",", ":"), ensure_ascii=True, default=str).encode() + b"\n"
            for r in self._pending
        )
        self._pending.clear()
        try:
            chunk = self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)
            self.out.write(chunk)
            self.out.flush()
        except (OSError, ValueError) as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException, doing: str = "") -> None:
        reason = getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}"
        what = doing or f"writing {self.path or 'the recording'}"
        self.error = f"{what} failed: {reason}"
        self._events.clear()
        self._pending.clear()
        self.closed = True
        if self.close_out:
            with contextlib.suppress(OSError):
                self.out.close()

    @classmethod
    def in_memory(cls, **kw: Any) -> Recorder:
        """A recorder into a buffer (`out.getvalue()`): a plot without a recording file."""
        return cls(io.BytesIO(), close_out=False, **kw)


__all__ = ["FORMAT", "FRAME_INTERVAL", "VERSION", "Recorder"]
