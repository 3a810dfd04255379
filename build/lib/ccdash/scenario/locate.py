"""Find the line a TOML key is on, so errors can point at it.

`tomllib` gives lines only for syntax errors; for a bad value we scan the text:
table headers (`[a.b]`, `[[drills]]` with its index) and `key =` lines. Inline
tables and multi-line values resolve to the line of their enclosing key.
"""

from __future__ import annotations

import re

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]#]+?)\s*\]\]?\s*(?:#.*)?$")
_PART = r"""(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)"""  # a bare or quoted key
_KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")


def _split_key(dotted: str) -> list[str]:
    parts = re.findall(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_\-]+)""", dotted)
    return [a or b or c for a, b, c in parts]


class KeyLocator:
    """Line numbers (1-based) of tables and keys in one TOML text."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        counts: dict[tuple[str, ...], int] = {}
        section: Path = ()
        in_multiline = False
        for n, raw in enumerate(text.splitlines(), start=1):
            if in_multiline:  # inside a ''' or """ string: no keys here
                if raw.count('"""') % 2 or raw.count("'''") % 2:
                    in_multiline = False
                continue
            header = _HEADER.match(raw)
            if header:
                names = tuple(_split_key(header.group(2)))
                if header.group(1) == "[[":
                    index = counts.get(names, 0)
                    counts[names] = index + 1
                    section = (*self._with_indices(names[:-1], counts), names[-1], index)
                else:
                    section = (*self._with_indices(names[:-1], counts), names[-1])
                self.lines.setdefault(section, n)
                continue
            key = _KEY.match(raw)
            if key:
                path = (*section, *_split_key(key.group(1)))
                self.lines.setdefault(path, n)
                if raw.count('"""') % 2 or raw.count("'''") % 2:
                    in_multiline = True

    @staticmethod
    def _with_indices(names: tuple[str, ...], counts: dict[tuple[str, ...], int]) -> Path:
        """`[[drills.x]]` belongs to the latest `[[drills]]`: put its index in."""
        out: list[str | int] = []
        for i, name in enumerate(names):
            out.append(name)
            seen = counts.get(names[: i + 1])
            if seen:
                out.append(seen - 1)
        return tuple(out)

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, else of its nearest enclosing key or table."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def dotted(path: Path) -> str:
    """`("drills", 1, "at")` -> `drills[2].at` (arrays counted from 1, as people read them)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        else:
            out += f".{part}" if out else part
    return out
