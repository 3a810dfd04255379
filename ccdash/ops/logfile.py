"""Structured logs: one JSON object per line for every operational event."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

from ccdash.engine import Event
from ccdash.engine import level_of as kind_level
from ccdash.files import AppendFile
from ccdash.ops import OpsError
from ccdash.text import ELLIPSIS, sanitize


def level_of(ev: Event) -> str:
    """info / warning / error: the event kind's own level (critical alerts are errors)."""
    return kind_level(ev.kind, dict(ev.fields))


# Characters of one string of a log record at most (an event's message quotes its
# fields, so it gets more): a 10 MB error text or message id from outside makes a
# line of a few KB, not one of 10 MB.
FIELD_LIMIT = 2000
MESSAGE_LIMIT = 2 * FIELD_LIMIT
KEY_LIMIT = 100


def _bounded(text: object, limit: int, name: str, cut: list[str]) -> str:
    """`text` sanitised and cut to `limit` (ending in …); `name` noted in `cut` if cut."""
    s = sanitize(text, limit)
    if s.endswith(ELLIPSIS) and sanitize(text, 2 * limit) != s:  # not a text's own …
        cut.append(name)
    return s


def event_record(ev: Event) -> dict[str, object]:
    """The JSON object written for one event, its text sanitised (`jq -r` prints it inert)
    and bounded: `truncated` lists the fields that were cut, if any."""
    cut: list[str] = []
    record: dict[str, object] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": level_of(ev),
        "event": ev.kind,
        "message": _bounded(ev.message, MESSAGE_LIMIT, "message", cut),
        "seq": ev.seq,
    }
    for k, v in ev.fields:  # outside text (errors, ids, names) as the terminal would see it
        key = sanitize(k, KEY_LIMIT)
        if key in record:
            continue
        kept = v if isinstance(v, int | float | bool | None) else _bounded(v, FIELD_LIMIT, key, cut)
        record[key] = kept
    if cut:
        record["truncated"] = cut
    return record


class JsonLogWriter:
    """Appends events to a file as JSON lines; created owner-only (0600), each line one
    write that another process appending to the same file cannot cut or lose (see
    `AppendFile`). A write that fails (disk full, I/O error) stops the log and is kept
    in `error`, never raised into the engine that emitted the event (the run matters
    more than its log)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.error: str | None = None
        self._fh = AppendFile(path)

    def __call__(self, ev: Event) -> None:
        """Write one event (an engine listener); nothing once closed or failed."""
        if self._fh.closed:
            return
        try:
            self._fh.write_line(json.dumps(event_record(ev), ensure_ascii=True) + "\n")
        except OSError as exc:
            self._failed(exc)

    def close(self) -> None:
        """Close the file."""
        try:
            self._fh.close()
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        if self.error is None:
            self.error = (
                f"--log-file: writing {self.path} failed ({exc.strerror or exc}); "
                "the log stops there, the run went on"
            )
        with contextlib.suppress(OSError):
            self._fh.close()


def open_log(path: str) -> JsonLogWriter:
    """A JsonLogWriter on `path`; OpsError naming `--log-file` if it cannot be opened."""
    try:
        return JsonLogWriter(path)
    except OSError as exc:
        raise OpsError(f"--log-file: cannot write to {path}: {exc.strerror or exc}") from None
