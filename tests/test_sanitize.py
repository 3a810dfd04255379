"""The one sanitiser for untrusted text (`ccdash.text`)."""

from __future__ import annotations

import logging
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccdash.text import SafeFormatter, body_text, sanitize

DANGEROUS: Final = ("Cc", "Cs", "Cf", "Zl", "Zp")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # ANSI colour
        ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),  # OSC 52 clipboard write
        ("\x9b2J", "\\x9b2J"),  # C1 CSI
        ("a\x7fb", "a\\x7fb"),  # DEL
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),  # right-to-left override
        ("x\u2066y\u2069", "x\\u2066y\\u2069"),  # bidi isolates
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("line\nbreak\ttab\r", "line\\x0abreak\\x09tab\\x0d"),
        ("[bold red]x[/]", "[bold red]x[/]"),  # markup is not this function's business
        ("héllo wörld ✓ 日本", "héllo wörld ✓ 日本"),  # ordinary text is untouched
    ],
)
def test_sanitize_makes_control_and_bidi_characters_visible(raw: str, shown: str) -> None:
    """Each dangerous character becomes a visible escape; the rest stays as it was."""
    assert sanitize(raw) == shown


def test_sanitize_keeps_newlines_only_when_asked() -> None:
    """`keep` leaves the named characters alone (multi-line views)."""
    assert sanitize("a\nb", keep="\n") == "a\nb"
    assert sanitize("a\n\x1bb", keep="\n") == "a\n\\x1bb"


def test_sanitize_cuts_to_the_limit_with_an_ellipsis() -> None:
    """A limit bounds the result, escapes included."""
    assert sanitize("abcdefgh", 5) == "abcd…"
    assert sanitize("\x1b" * 10, 9) == "\\x1b\\x1b…"  # an escape is never cut in half
    assert sanitize("short", 5) == "short"


def test_sanitize_bounds_the_work_on_a_megabyte() -> None:
    """A 1 MB input with a limit is cut before it is scanned."""
    assert len(sanitize("\x1b" * 1_000_000, 80)) <= 80


def test_sanitize_decodes_bytes_and_escapes_invalid_utf8() -> None:
    """Bytes are shown as UTF-8 with undecodable bytes escaped."""
    assert sanitize(b"ok \xff \x1b[2J") == "ok \\xff \\x1b[2J"


def test_body_text_renders_json_and_bytes_literally() -> None:
    """Bodies become one JSON line (or pretty, keeping newlines) with escapes visible."""
    assert body_text({"a": "\u202e[x]"}) == '{"a":"\\u202e[x]"}'
    assert body_text({"a": 1}, pretty=True) == '{\n  "a": 1\n}'
    assert body_text(b"\x1b]52;c;QQ==\x07") == "\\x1b]52;c;QQ==\\x07"
    assert len(body_text({"big": "x" * 1_000_000}, 100)) == 100


def _nested(depth: int) -> list[object]:
    body: list[object] = []
    for _ in range(depth):
        body = [body]
    return body


def _deep_in_the_stack(frames: int, call: Callable[[], str]) -> str:
    return call() if frames == 0 else _deep_in_the_stack(frames - 1, call)


@pytest.mark.parametrize("pretty", [True, False])
def test_body_text_of_a_deeply_nested_body_does_not_raise(pretty: bool) -> None:
    """A body nested 900 deep (publishable: the encoder takes it) shown from a deep stack,
    as the dashboard's detail view does: text, not the RecursionError that the pretty
    printer (pure Python, a frame per level) raised and that took the dashboard down."""
    text = _deep_in_the_stack(150, lambda: body_text(_nested(900), 200, pretty=pretty))
    assert text.startswith("[[[[") and len(text) <= 200


@given(st.text())
def test_sanitize_never_lets_a_dangerous_character_through(text: str) -> None:
    """Whatever comes in, no control, format, separator or surrogate character goes out."""
    out = sanitize(text)
    assert not any(unicodedata.category(ch) in DANGEROUS for ch in out)
    out.encode("utf-8")  # no lone surrogate left to crash a writer


@given(st.text(alphabet=st.characters(blacklist_categories=DANGEROUS)))
def test_sanitize_leaves_ordinary_text_unchanged(text: str) -> None:
    """Printable text (any script) passes through as it is."""
    assert sanitize(text) == text


def test_the_sanitiser_imports_neither_rich_nor_textual() -> None:
    """Headless output and logs can use it without the UI stack."""
    code = (
        "import sys, ccdash.text; print(any(m.split('.')[0] in ('rich', 'textual') "
        "for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_safe_formatter_keeps_one_event_on_one_line() -> None:
    """A newline in logged outside text (a handler's error) is escaped, so it cannot forge
    a second log line; a traceback still spans its lines."""
    fmt = SafeFormatter("%(levelname)s %(name)s: %(message)s")
    forged = "boom\n2026-01-01 INFO ccdash.worker: worker w1 stopped"
    record = logging.LogRecord("ccdash.worker", logging.INFO, "f", 1, "%s failed", (forged,), None)
    line = fmt.format(record)
    assert "\n" not in line
    assert line.endswith("boom\\x0a2026-01-01 INFO ccdash.worker: worker w1 stopped failed")
    try:
        raise ValueError("inner\x1b[2J")
    except ValueError:
        exc = sys.exc_info()
    text = fmt.format(logging.LogRecord("x", logging.ERROR, "f", 1, "crashed", None, exc))
    assert text.startswith("ERROR x: crashed\nTraceback") and "\\x1b[2J" in text
    assert "\x1b" not in text
