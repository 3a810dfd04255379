"""Reading a recording back: checked record by record, every string sanitised.

`read_recording(path)` decompresses the file, checks the header's format and
version, and decodes every record once, so a damaged file fails here with one
line (`RecordingError`) rather than in the middle of a replay. A file whose
gzip stream stops early (the run was killed) is read up to its last complete
record and marked `cut_short`. Every string read from the file goes through
`ccdash.text.sanitize` on the way in (bodies through `body_text` when shown),
so nothing in a recording can reach a terminal raw.

Frames are kept as their JSON lines with a decoded checkpoint every
`CHECKPOINT_EVERY` frames, so seeking anywhere in an hour costs at most that
many small decodes, and memory stays near the file's uncompressed size.
"""

from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass, field
from typing import Any

from ccdash import strict_json
from ccdash.engine.snapshot import LIVE_STATES, Event, Snapshot
from ccdash.files import PrivateFileError, read_small_file
from ccdash.record.codec import CONSUMERS, DEAD
from ccdash.record.decode import DecodedState
from ccdash.record.kinds import OperatorEvent
from ccdash.record.writer import FORMAT, VERSION
from ccdash.text import sanitize

CHECKPOINT_EVERY = 32
MAX_BYTES = 2 * 1024**3  # refuse to inflate more than this (a hostile "zip bomb")
# A recording compresses about 5:1 (each batch ends with a sync point); a file that
# inflates over 100:1 past 32 MiB was made to: refused while inflating, before the
# memory is spent (a 2 MiB file would otherwise take gigabytes).
BOMB_RATIO = 100
BOMB_FLOOR = 32 * 1024**2
_STEP = 1 << 20  # compressed bytes fed at a time; output per call is capped likewise
_BIG = 10**strict_json.MAX_INT_DIGITS  # the first integer of MAX_INT_DIGITS + 1 digits


class RecordingError(Exception):
    """The file is not a recording this ccdash can read; the message is one line."""


@dataclass(frozen=True, slots=True)
class Series:
    """The numbers a timeline plot needs, one value per frame."""

    at: list[float] = field(default_factory=list)
    publish_rate: list[float] = field(default_factory=list)
    ack_rate: list[float] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)
    live: list[int] = field(default_factory=list)
    desired: list[int] = field(default_factory=list)
    p99_ms: list[float | None] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OperatorAction:
    """An operator's command as the dashboard logged it."""

    at: float
    message: str
    error: bool


@dataclass
class Recording:
    """A decoded recording; see the module docstring."""

    path: str
    header: dict[str, Any]
    frame_at: list[float] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    event_source: list[str] = field(default_factory=list)  # "engine" | "workload", per event
    operator: list[OperatorAction] = field(default_factory=list)
    drill_updates: list[tuple[float, list[dict[str, Any]]]] = field(default_factory=list)
    report: dict[str, Any] | None = None
    cut_short: bool = False  # the stream stops without its end marker (a killed run)
    series: Series = field(default_factory=Series)
    _lines: list[bytes] = field(default_factory=list, repr=False)
    _checkpoints: list[DecodedState] = field(default_factory=list, repr=False)
    _cache: tuple[int, DecodedState] | None = field(default=None, repr=False)
    _timeline: list[Event] | None = field(default=None, repr=False)
    _times: list[float] = field(default_factory=list, repr=False)

    @property
    def start(self) -> float:
        """Clock time of the first frame."""
        return self.frame_at[0]

    @property
    def end(self) -> float:
        """Clock time of the last frame."""
        return self.frame_at[-1]

    @property
    def t0(self) -> float:
        """Clock time the recording began (what times are shown relative to)."""
        t0 = self.header.get("t0")
        return float(t0) if isinstance(t0, int | float) else self.start

    def frame_index(self, at: float) -> int:
        """The last frame at or before `at` (the first one before the start)."""
        return max(0, bisect.bisect_right(self.frame_at, at) - 1)

    def state(self, index: int) -> DecodedState:
        """The decoded state of frame `index` (shared: do not change it)."""
        cached = self._cache
        if cached is not None and cached[0] <= index < cached[0] + CHECKPOINT_EVERY:
            i, st = cached
        else:
            i = index - index % CHECKPOINT_EVERY
            st = self._checkpoints[i // CHECKPOINT_EVERY].copy()
        while i < index:
            i += 1
            st.apply(_parse(self._lines[i]))
        self._cache = (i, st)
        return st

    def snapshot(self, index: int) -> Snapshot:
        """The Snapshot of frame `index`."""
        return self.state(index).snapshot()

    def drills_at(self, at: float) -> list[dict[str, Any]]:
        """The drill records as they stood at `at`."""
        i = bisect.bisect_right([u[0] for u in self.drill_updates], at)
        return self.drill_updates[i - 1][1] if i else []

    def events_between(self, after: float, until: float) -> list[Event]:
        """Events (and operator actions, as `operator` events) with after < at <= until."""
        timeline, times = self.timeline(), self._times
        return timeline[bisect.bisect_right(times, after) : bisect.bisect_right(times, until)]

    def events_until(self, at: float, limit: int) -> list[Event]:
        """The last `limit` events (and operator actions) at or before `at`."""
        timeline = self.timeline()
        i = bisect.bisect_right(self._times, at)
        return timeline[max(0, i - limit) : i]

    def timeline(self) -> list[Event]:
        """Engine and run events merged with operator actions, in time order."""
        cached = self._timeline
        if cached is None:
            ops = [Event(0, o.at, OperatorEvent.of(o.error), o.message) for o in self.operator]
            cached = sorted([*self.events, *ops], key=lambda e: e.at)
            self._timeline = cached
            self._times = [e.at for e in cached]
        return cached


# -- reading ---------------------------------------------------------------------


def clean(value: Any, *, any_int: bool = False) -> Any:
    """Every string in a decoded JSON value through the sanitiser (keys too); an integer
    of more than MAX_INT_DIGITS digits is a ValueError unless `any_int` (a message body:
    it holds what was published, and ccdash takes integers of any size)."""
    if isinstance(value, str):
        return sanitize(value)
    if isinstance(value, list):
        return [clean(v, any_int=any_int) for v in value]
    if isinstance(value, dict):
        return {sanitize(k): clean(v, any_int=any_int) for k, v in value.items()}
    if not any_int and type(value) is int and not -_BIG < value < _BIG:
        raise ValueError(f"an integer of {len(str(abs(value)))} digits")
    return value


def _parse(line: bytes) -> Any:
    """One record: no NaN, Infinity, 1e999 (no recorder writes them), and integers past
    MAX_INT_DIGITS only inside a dead letter's body (a count or time that long is damage;
    Python's own limit, 4300 digits, still holds there)."""
    r = strict_json.loads(line, max_int_digits=None)
    if isinstance(r, dict) and r.get("t") == "s" and isinstance(r.get(DEAD), dict):
        dead = r.pop(DEAD)
        out = clean(r)
        out[DEAD] = _clean_dead(dead)
        return out
    return clean(r)


def _clean_dead(part: dict[str, Any]) -> Any:
    """A frame's dead letters cleaned; each body (item 5 of an entry) with any integers."""
    updates = part.get("u")
    if not isinstance(updates, dict):
        return clean(part)  # malformed: decode.py says what is wrong
    out = clean({k: v for k, v in part.items() if k != "u"})
    out["u"] = {sanitize(k): _clean_letter(v) for k, v in updates.items()}
    return out


def _clean_letter(v: Any) -> Any:
    if not (isinstance(v, list) and len(v) == 7):
        return clean(v)
    return [*clean(v[:4]), clean(v[4], any_int=True), *clean(v[5:])]


def _inflate(path: str, raw: bytes) -> tuple[bytes, bool]:
    """The decompressed bytes, and whether the stream stopped before its end."""
    if raw[:2] != b"\x1f\x8b":
        what = "it is empty" if not raw else "it does not start with a gzip header"
        raise RecordingError(f"{path}: not a ccdash recording ({what})")
    z = zlib.decompressobj(31)
    out = bytearray()
    fed = 0
    try:
        while fed < len(raw) and not z.eof:
            chunk = raw[fed : fed + _STEP]
            fed += len(chunk)
            while chunk:
                out += z.decompress(chunk, _STEP)
                chunk = z.unconsumed_tail
                _check_size(path, len(out), fed - len(chunk))
        out += z.flush()  # what zlib still holds of the input it took (at most a window)
    except zlib.error as exc:
        raise RecordingError(
            f"{path}: corrupt recording: the compressed stream is damaged ({exc})"
        ) from None
    data = bytes(out)
    del out
    if z.eof and z.unused_data:
        raise RecordingError(
            f"{path}: corrupt recording: {len(z.unused_data)} bytes of "
            "garbage after the end of the stream"
        )
    return data, not z.eof


def _check_size(path: str, inflated: int, consumed: int) -> None:
    if inflated > MAX_BYTES:
        raise RecordingError(
            f"{path}: recording too large (more than {MAX_BYTES // 1024**2} MiB uncompressed)"
        )
    if inflated > BOMB_FLOOR and inflated > BOMB_RATIO * max(1, consumed):
        raise RecordingError(
            f"{path}: not replayed: {consumed} compressed bytes inflate to over "
            f"{inflated // 1024**2} MiB (more than {BOMB_RATIO}:1, a zip bomb?)"
        )


def read_recording(path: str) -> Recording:
    """Read and check a recording; RecordingError (one line) if it cannot be replayed."""
    try:
        # Not a regular file (a FIFO would wait for a writer, /dev/zero never end) or
        # larger than what may be inflated: refused before a byte is read.
        raw = read_small_file(path, path, MAX_BYTES)
    except PrivateFileError as exc:
        raise RecordingError(_unreadable(path, exc)) from None
    return parse_recording(raw, path)


def _unreadable(path: str, exc: PrivateFileError) -> str:
    """Why the file cannot be read, said of a recording."""
    if exc.why == "missing":
        return f"{path}: no such file"
    if exc.why == "directory":
        return f"{path}: is a directory, not a recording"
    if exc.why == "not-regular":
        return f"{path}: not a regular file; a recording is the file --record wrote"
    if exc.why == "too-large":
        return f"{path}: recording too large (more than {MAX_BYTES // 1024**2} MiB)"
    return f"{path}: cannot read it: {str(exc).rpartition(': ')[2]}"


def parse_recording(raw: bytes, path: str = "<recording>") -> Recording:
    """A recording from its bytes; RecordingError (one line, naming `path`) if damaged."""
    data, truncated = _inflate(path, raw)
    lines = data.split(b"\n")
    if lines[-1] and not truncated:  # a record without its newline, yet the stream ended
        raise RecordingError(f"{path}: corrupt recording: the last record has no line end")
    lines.pop()  # "" after the last newline, or a record cut off mid-write
    if not lines:
        raise RecordingError(f"{path}: truncated recording: it ends before its header")
    rec = Recording(path, _header(path, lines[0]))
    _Loader(rec).load(lines)
    if not rec.frame_at:
        raise RecordingError(f"{path}: truncated recording: it holds no frame")
    rec.cut_short = rec.cut_short or truncated
    return rec


def _header(path: str, line: bytes) -> dict[str, Any]:
    try:
        header = clean(strict_json.loads(line))
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested deep
        raise RecordingError(
            f"{path}: corrupt recording: line 1 (the header) is not JSON"
        ) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise RecordingError(
            f"{path}: not a ccdash recording (its header does not say format {FORMAT!r})"
        )
    version = header.get("v")
    if not isinstance(version, int) or version < 1:
        raise RecordingError(
            f"{path}: corrupt recording: format version {version!r} is not a positive integer"
        )
    if version > VERSION:
        raise RecordingError(
            f"{path}: written by a newer ccdash (recording format version "
            f"{version}; this ccdash reads up to {VERSION}): upgrade "
            "ccdash to replay it"
        )
    return header


class _Loader:
    """One pass over the records: decode, check, index."""

    def __init__(self, rec: Recording) -> None:
        self.rec = rec
        self.state = DecodedState()
        self.ended = False

    def load(self, lines: list[bytes]) -> None:
        rec = self.rec
        for number, line in enumerate(lines[1:], start=2):
            try:
                self._record(line)
            except RecordingError:
                raise
            except (
                ValueError,
                KeyError,
                TypeError,
                IndexError,
                UnicodeDecodeError,
                AttributeError,
                OverflowError,  # a number float() cannot take where a count is drawn
                RecursionError,  # lists or objects nested thousands deep
            ) as exc:
                raise RecordingError(
                    f"{rec.path}: corrupt recording: line {number}: {_why(exc)}"
                ) from None
        rec.cut_short = not self.ended

    def _record(self, line: bytes) -> None:
        rec = self.rec
        r = _parse(line)
        if not isinstance(r, dict):
            raise ValueError("a record is not a JSON object")
        kind = r.get("t")
        if kind == "s":
            self._frame(line, r)
        elif kind == "e":
            self._event(r)
        elif kind == "o":
            rec.operator.append(OperatorAction(_num(r["at"]), _str(r["m"]), bool(r["err"])))
        elif kind == "d":
            drills = r["d"]
            if not (isinstance(drills, list) and all(isinstance(d, dict) for d in drills)):
                raise ValueError("drill records are not a list of objects")
            rec.drill_updates.append((_num(r["at"]), drills))
        elif kind == "r":
            if not isinstance(r["report"], dict):
                raise ValueError("the report is not an object")
            rec.report = r["report"]
        elif kind == "z":
            self.ended = True
        # Other kinds: written by a later release of this format version; skipped.

    def _frame(self, line: bytes, r: dict[str, Any]) -> None:
        rec, st = self.rec, self.state
        prev = rec.frame_at[-1] if rec.frame_at else None
        st.apply(r)
        if prev is not None and st.at < prev:
            raise ValueError(f"frame time {st.at} goes back before {prev}")
        snap = _summary(st)
        n = len(rec.frame_at)
        if n % CHECKPOINT_EVERY == 0:
            st.snapshot()  # the whole state, checked once per checkpoint
            rec._checkpoints.append(st.copy())
        rec._lines.append(line)
        rec.frame_at.append(st.at)
        s = rec.series
        s.at.append(st.at)
        s.publish_rate.append(snap[0])
        s.ack_rate.append(snap[1])
        s.depth.append(snap[2])
        s.in_flight.append(snap[3])
        s.live.append(snap[4])
        s.desired.append(snap[5])
        s.p99_ms.append(snap[6])

    def _event(self, r: dict[str, Any]) -> None:
        fields = r["f"]
        if not isinstance(fields, dict):
            raise ValueError("event fields are not an object")
        seq = r.get("n")
        ev = Event(
            seq if isinstance(seq, int) else 0,
            _num(r["at"]),
            _str(r["k"]),
            _str(r["m"]),
            tuple(fields.items()),
        )
        self.rec.events.append(ev)
        self.rec.event_source.append(_str(r.get("s", "engine")))


def _summary(st: DecodedState) -> tuple[float, float, int, int, int, int, float | None]:
    """The plotted numbers of one frame, type-checked (ValueError if they are not numbers)."""
    t = st.top
    q = t["q"]
    if not (isinstance(q, list) and len(q) == 6):
        raise ValueError("queue counts are not a list of 6")
    live = sum(1 for v in st.items[CONSUMERS].values() if v[0] in LIVE_STATES)
    p99 = t.get("latency_p99")
    return (
        _num(t["publish_rate"] or 0),
        _num(t["ack_rate"] or 0),
        _int(q[0]),
        _int(q[3]),
        live,
        _int(t["desired"]),
        None if p99 is None else _num(p99) * 1000,
    )


def _num(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ValueError(f"{x!r} is not a number")
    return float(x)


def _int(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise ValueError(f"{x!r} is not an integer")
    return x


def _str(x: Any) -> str:
    if not isinstance(x, str):
        raise ValueError(f"{x!r} is not a string")
    return x


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"field {exc.args[0]!r} missing"
    if isinstance(exc, RecursionError):
        return "values nested too deeply"
    text = " ".join(str(exc).split())
    return sanitize(text, 160) or type(exc).__name__


__all__ = [
    "OperatorAction",
    "Recording",
    "RecordingError",
    "Series",
    "clean",
    "parse_recording",
    "read_recording",
]
