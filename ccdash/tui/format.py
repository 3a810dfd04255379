"""Everything about how numbers and untrusted text look on screen.

Colours come from the active theme (a `Palette`), units and truncation live
here, and every string that came from outside goes through
`ccdash.text.sanitize` and into a `rich.text.Text` (never markup), so a
payload like `[@click=app.quit]` stays text.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.color import Color as TextualColor
from textual.color import ColorParseError
from textual.theme import Theme

from ccdash.engine import ENDED_STATES, AlertState, ConsumerState, Severity
from ccdash.scenario.drill_record import Verdict
from ccdash.text import sanitize

DASH = "–"


@dataclass(frozen=True, slots=True)
class Palette:
    """The colours the dashboard uses, taken from a theme."""

    ok: str
    warn: str
    bad: str
    accent: str
    primary: str
    info: str
    muted: str

    @classmethod
    def from_theme(cls, theme: Theme) -> Palette:
        """Map a Textual theme's colours onto the dashboard's roles."""
        fg = _hex(theme.foreground, "#e0e0e0" if theme.dark else "#202020")
        primary = _hex(theme.primary, "#4c9be8")
        return cls(
            ok=_hex(theme.success, "green"),
            warn=_hex(theme.warning, "yellow"),
            bad=_hex(theme.error, "red"),
            accent=_hex(theme.accent, primary),
            primary=primary,
            info=_hex(theme.secondary, primary),
            muted=_blend(fg, _hex(theme.background, "#000000" if theme.dark else "#ffffff")),
        )


def _hex(colour: str | None, default: str) -> str:
    """A theme's colour as #rrggbb, which Rich draws: Textual also takes `transparent`,
    `ansi_red`, hsl() and rgba(), which Rich's Style cannot parse."""
    if not colour:
        return default
    try:
        return TextualColor.parse(colour).hex6
    except ColorParseError:
        return default


def _blend(fg: str, bg: str, amount: float = 0.45) -> str:
    """A colour between foreground and background: readable but quiet."""
    try:
        f = [int(fg[i : i + 2], 16) for i in (1, 3, 5)]
        b = [int(bg[i : i + 2], 16) for i in (1, 3, 5)]
    except (ValueError, IndexError):
        return "grey50"
    mix = [round(x + (y - x) * amount) for x, y in zip(f, b, strict=True)]
    return "#" + "".join(f"{v:02x}" for v in mix)


# -- units -------------------------------------------------------------------


def count(n: int | float) -> str:
    """A count in at most ~5 characters: 950, 12.3k, 4.1M."""
    n = float(n)
    if abs(n) < 10_000:
        return f"{n:.0f}"
    if abs(n) < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def rate(per_s: float) -> str:
    """Messages per second."""
    if not math.isfinite(per_s):
        return DASH
    return f"{per_s:.0f}/s" if per_s < 10_000 else f"{per_s / 1000:.1f}k/s"


def duration(seconds: float | None) -> str:
    """A latency or age: 0.4ms, 12ms, 1.20s, 42s, 3m05s."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    if seconds < 0.001:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def clock_offset(seconds: float) -> str:
    """Time since start, as t+1.5s, t+42.0s, t+3m05s, t+1h40m or t+12d03h; before the
    start (a shared queue's past) as t-2.5s or t-30m00s. At most 8 cells below 27 years
    (the width of the time columns), so a time is never cut."""
    seconds = seconds if math.isfinite(seconds) else 0.0
    sign = "-" if seconds <= -0.05 else "+"
    seconds = abs(seconds) if sign == "-" else max(0.0, seconds)
    if seconds < 60:
        return f"t{sign}{seconds:.1f}s"
    whole = int(seconds)
    if whole < 100 * 60:
        m, s = divmod(whole, 60)
        return f"t{sign}{m}m{s:02d}s"
    if whole < 100 * 3600:
        h, m = divmod(whole // 60, 60)
        return f"t{sign}{h}h{m:02d}m"
    d, h = divmod(whole // 3600, 24)
    return f"t{sign}{d}d{h:02d}h" if d < 100 else f"t{sign}{d}d"


# -- text --------------------------------------------------------------------


def untrusted(value: object, width: int | None = None, style: str | Style = "") -> Text:
    """Outside text as one literal line: sanitised, markup never parsed, cut to `width` cells."""
    text = Text(
        sanitize(value, None if width is None else width * 2 + 8),
        style=style,
        no_wrap=True,
        overflow="ellipsis",
        end="",
    )
    if width is not None:
        text.truncate(width, overflow="ellipsis")
    return text


def untrusted_id(value: object, width: int, style: str | Style = "") -> Text:
    """An outside id in `width` cells, cut in the middle: ids that share a prefix (Redis
    ids, `<producer>-<seq>`) differ at the end, which the cut keeps. Sanitised."""
    raw = str(value)
    if len(raw) > 4 * width:  # escapes only lengthen: the ends are enough to look at
        raw = raw[: 2 * width] + raw[-2 * width :]
    text = sanitize(raw)
    if cell_len(text) <= width:
        return Text(text, style=style, no_wrap=True, end="")
    room = width - 1  # the ellipsis takes a cell
    head_w = room // 2  # the end gets the odd cell
    head = ""
    for ch in text:
        if cell_len(head + ch) > head_w:
            break
        head += ch
    tail = ""
    for ch in reversed(text):
        if cell_len(head) + cell_len(ch + tail) > room:
            break
        tail = ch + tail
    return Text(head + "…" + tail, style=style, no_wrap=True, end="")


def broker_url(url: str, width: int = 40) -> str:
    """A broker URL in `width` cells, keeping its scheme and the end of its path (the
    file name says more than the directories above it)."""
    if len(url) <= width or "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    head = scheme + ":///" if rest.startswith("/") else scheme + "://"
    keep = max(1, width - len(head) - 1)
    return head + "…" + rest[-keep:]


def plain(value: str, style: str | Style = "", justify: str = "left") -> Text:
    """Our own text (numbers, labels) as a single-line Text."""
    return Text(value, style=style, no_wrap=True, overflow="ellipsis", end="", justify=justify)  # type: ignore[arg-type]


def number(value: str, style: str | Style = "") -> Text:
    """A right-aligned number cell."""
    return plain(value, style, justify="right")


STATE_ROLES: dict[str, str] = {
    ConsumerState.IDLE: "muted",
    ConsumerState.PROCESSING: "ok",
    ConsumerState.DRAINING: "info",
    ConsumerState.FAILED: "bad",
    ConsumerState.STOPPED: "muted",
}


def state(
    p: Palette, name: str, *, hung: bool = False, slow: float = 1.0, faded: bool = False
) -> Text:
    """A consumer state, coloured; hung/slowed consumers are marked. Sanitised: another
    worker's presence record (a foreign writer's) names its consumers' states."""
    label = sanitize(name, 24)
    role = STATE_ROLES.get(name, "warn")
    if hung and name not in ENDED_STATES:
        label, role = "hung?", "warn"
    elif slow > 1.0 and name not in ENDED_STATES:
        label = f"{label} x{slow:g}"
        role = "warn"
    style = getattr(p, role)
    return plain(
        label, Style(color=style, dim=faded, bold=name == ConsumerState.FAILED and not faded)
    )


SEVERITY_ROLES: dict[str, str] = {
    Severity.CRITICAL: "bad",
    Severity.WARNING: "warn",
    Severity.INFO: "info",
}


def severity(p: Palette, name: str) -> Text:
    """An alert severity, coloured."""
    role = SEVERITY_ROLES.get(name, "info")
    return untrusted(name, 8, Style(color=getattr(p, role), bold=name == Severity.CRITICAL))


ALERT_STATE_ROLES: dict[str, str] = {
    AlertState.FIRING: "bad",
    AlertState.ACKNOWLEDGED: "warn",
    AlertState.RESOLVED: "ok",
}


def alert_state(p: Palette, name: str) -> Text:
    """firing / acknowledged / resolved."""
    color = getattr(p, ALERT_STATE_ROLES.get(name, "muted"))
    return untrusted(name, 12, Style(color=color))


# A verdict's role; the other words are how other tools (and older records) say them.
VERDICT_ROLES: dict[str, str] = {
    Verdict.PASS: "ok",
    "passed": "ok",
    "ok": "ok",
    Verdict.FAIL: "bad",
    "failed": "bad",
    Verdict.PENDING: "warn",
    "running": "warn",
}
UNDECIDED = frozenset({Verdict.PENDING, "running"})  # a drill still under way


def verdict(p: Palette, name: str) -> Text:
    """A drill verdict: pass / fail / pending / done / skipped."""
    color = getattr(p, VERDICT_ROLES.get(name.lower(), "muted"))
    return untrusted(name, 10, Style(color=color, bold=True))


def bar(p: Palette, fraction: float, width: int, label: str = "") -> Text:
    """A horizontal bar of `width` cells, filled to `fraction`, coloured by how full it is."""
    fraction = min(1.0, max(0.0, fraction if math.isfinite(fraction) else 0.0))
    filled = round(fraction * width)
    color = p.ok if fraction > 0.5 else p.warn if fraction > 0.2 else p.bad
    text = Text(no_wrap=True, end="")
    text.append("█" * filled, Style(color=color))
    text.append("░" * (width - filled), Style(color=p.muted))
    if label:
        text.append(" " + label, Style(color=p.muted))
    return text


# -- sorting what is shown ------------------------------------------------------

_UNITS = {"µs": 1e-6, "ms": 1e-3, "s": 1.0, "k": 1e3, "M": 1e6, "/s": 1.0, "x": 1.0}


def sort_value(raw: Hashable) -> tuple[int, float, str]:
    """A cell's raw value as a sort key: numbers (also "12ms", "1.2k") before text."""
    value = raw[0] if isinstance(raw, tuple) and raw else raw
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int | float):
        return (0, float(value), "")
    text = str(value)
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            head = text[: -len(unit)]
            if head.endswith("m") and unit == "s" and head[:-1]:  # 3m05s
                break
            try:
                return (0, float(head) * _UNITS[unit], "")
            except ValueError:
                break
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text.casefold())


__all__ = [
    "DASH",
    "Palette",
    "UNDECIDED",
    "VERDICT_ROLES",
    "alert_state",
    "bar",
    "broker_url",
    "clock_offset",
    "count",
    "duration",
    "number",
    "plain",
    "rate",
    "sort_value",
    "severity",
    "state",
    "untrusted",
    "untrusted_id",
    "verdict",
]
