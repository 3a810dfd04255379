"""Untrusted text made safe to show: the one sanitiser for the TUI, headless output and logs.

Message bodies, error texts and consumer ids come from outside. Shown raw, an
ESC could start an ANSI or OSC sequence (OSC 52 writes the operator's
clipboard), a bidi override could reorder what the operator reads, a lone
surrogate could crash the terminal writer. `sanitize` makes every such
character visible as an escape (`\\x1b`, `\\u202e`), so the text reads
literally and can do nothing. Markup is not this module's concern: the TUI
renders sanitised text with markup off.

No rich or textual import here: headless output and log files use it too.
"""

from __future__ import annotations

import codecs
import contextlib
import difflib
import json
import logging
import sys
import unicodedata
from collections.abc import Iterable
from typing import Any, TextIO

ELLIPSIS = "…"

# Characters that are invisible or change how the rest of the line is shown,
# besides the control characters (which unicodedata classifies as Cc).
_BIDI_AND_INVISIBLE = frozenset(
    [
        *range(0x202A, 0x202F),  # LRE RLE PDF LRO RLO
        *range(0x2066, 0x206A),  # LRI RLI FSI PDI
        0x200E,
        0x200F,
        0x061C,  # LRM RLM ALM
        0x200B,
        0x200C,
        0x200D,
        0x2060,
        0xFEFF,  # zero-width characters, BOM
        0x2028,
        0x2029,  # line and paragraph separators
        0x00AD,  # soft hyphen
    ]
)


def _needs_escape(ch: str, keep: str) -> bool:
    if ch in keep:
        return False
    o = ord(ch)
    if o < 0x20 or 0x7F <= o <= 0x9F:  # C0, DEL, C1 (includes ESC, CSI, OSC, ST)
        return True
    if o < 0x7F:
        return False
    if o in _BIDI_AND_INVISIBLE:
        return True
    cat = unicodedata.category(ch)
    return cat in ("Cs", "Cf", "Zl", "Zp")  # lone surrogates, other format characters


def _escape(ch: str) -> str:
    o = ord(ch)
    if o <= 0xFF:
        return f"\\x{o:02x}"
    if o <= 0xFFFF:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def sanitize(text: object, limit: int | None = None, *, keep: str = "") -> str:
    """`text` as a string that is safe to write to a terminal or a log line.

    Control characters (C0, DEL, C1, so every ESC/CSI/OSC), bidi overrides and
    isolates, zero-width and other format characters, line separators and
    lone surrogates become visible escapes. `keep` names characters to leave
    alone (e.g. "\\n" for a multi-line view). With `limit`, the result is cut
    to at most `limit` characters, ending in "…". Non-strings are `str()`-ed;
    bytes are decoded as UTF-8 with undecodable bytes shown as escapes.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        raw = bytes(text)
        if limit is not None:
            raw = raw[: limit * 4 + 4]
        s = raw.decode("utf-8", errors="backslashreplace")
    elif isinstance(text, str):
        s = text
    else:
        s = str(text)
    if limit is not None and len(s) > limit + 1:
        s = s[: limit + 1]  # bound the work on huge inputs (a 1 MB body)
    if not (s.isascii() and s.isprintable()) and any(_needs_escape(ch, keep) for ch in s):
        pieces = [_escape(ch) if _needs_escape(ch, keep) else ch for ch in s]
        if limit is not None and sum(map(len, pieces)) > limit:
            kept, n = [], 0
            for piece in pieces:  # never cut an escape in half
                if n + len(piece) > limit - 1:
                    break
                kept.append(piece)
                n += len(piece)
            return "".join(kept) + ELLIPSIS
        s = "".join(pieces)
    if limit is not None and len(s) > limit:
        s = s[: max(0, limit - 1)] + ELLIPSIS
    return s


def body_text(body: Any, limit: int | None = None, *, pretty: bool = False) -> str:
    """A message body as sanitised text: JSON for decoded values, UTF-8 for bytes.

    `pretty` indents JSON and keeps newlines (for a detail view); otherwise it
    is one line.
    """
    if isinstance(body, bytes | bytearray | memoryview):
        return sanitize(body, limit)
    if isinstance(body, str) and limit is not None and len(body) > limit * 2:
        body = body[: limit * 2]  # don't serialise a megabyte to show a line of it
    try:
        text = json.dumps(
            body,
            ensure_ascii=False,
            indent=2 if pretty else None,
            separators=None if pretty else (",", ":"),
        )
    except (TypeError, ValueError):
        text = repr(body)
    except RecursionError:  # nested deeper than the stack left allows (a frame a level)
        text = json_prefix(body, limit or sys.maxsize)
    return sanitize(text, limit, keep="\n" if pretty else "")


class _Literal(str):
    """Text `json_prefix` writes as it is (a bracket, a comma, a key)."""


def json_prefix(body: Any, limit: int) -> str:
    """The start of `body`'s compact JSON, at least `limit` characters of it if it is
    that long, built without recursion: for a body nested deeper than the encoders
    (a stack frame per level) can take where it is shown."""
    out: list[str] = []
    size = 0
    todo: list[Any] = [body]
    while todo and size < limit:
        item = todo.pop()
        if type(item) is _Literal:
            piece: str = item
        elif isinstance(item, dict | list | tuple):
            pairs = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
            piece = "{" if isinstance(item, dict) else "["
            todo.append(_Literal("}" if isinstance(item, dict) else "]"))
            for i in range(len(pairs) - 1, -1, -1):
                key, value = pairs[i]
                todo.append(value)
                if isinstance(item, dict):
                    todo.append(_Literal(json.dumps(str(key), ensure_ascii=False) + ":"))
                if i:
                    todo.append(_Literal(","))
        else:
            try:
                piece = json.dumps(item, ensure_ascii=False)
            except (TypeError, ValueError):
                piece = repr(item)
        out.append(piece)
        size += len(piece)
    return "".join(out)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`1 dead letter`, `2 dead letters`: a count with its noun in the right number
    (`plural` for an irregular one)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def did_you_mean(word: str, valid: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when something valid is close to `word`, else ``."""
    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def escape_unencodable(*streams: TextIO) -> None:
    """Streams that cannot encode every character (stdout in an ASCII locale: LC_ALL=C
    with Python's UTF-8 mode off) print such a character as an escape (\\xb7) instead
    of raising in the middle of a report and ending the run before its JSON is written."""
    for stream in streams:
        try:
            utf8 = codecs.lookup(stream.encoding).name == "utf-8"
        except (AttributeError, LookupError, TypeError):
            continue
        reconfigure = getattr(stream, "reconfigure", None)
        if not utf8 and reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


class SafeFormatter(logging.Formatter):
    """Log lines for a terminal or a file: what came from outside (worker names, handler
    errors, refused commands) is sanitised, so it cannot act on the terminal."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The event's own line with every control character escaped, a newline too: a
        handler's error cannot start a forged line of its own."""
        return sanitize(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        """The usual line, every character that could act on a terminal escaped (a
        traceback after it keeps its line breaks)."""
        return sanitize(super().format(record), keep="\n\t")


__all__ = [
    "ELLIPSIS",
    "SafeFormatter",
    "body_text",
    "counted",
    "did_you_mean",
    "escape_unencodable",
    "json_prefix",
    "sanitize",
]
