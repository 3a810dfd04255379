"""Themes as data: `themes/*.toml` files loaded at start-up into Textual `Theme`s.

Each file holds the fields of `textual.theme.Theme` (name, primary, background,
...). A built-in dark theme is the fallback when the directory is missing or a
file is broken, so the dashboard always starts. `CCDASH_THEMES_DIR` points at
another directory.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.css.tokenize import tokenize_values
from textual.css.tokenizer import TokenError
from textual.theme import Theme

from ccdash.files import PrivateFileError, read_small_file
from ccdash.text import sanitize

DEFAULT_THEME = "dark"
THEME_FILE_LIMIT = 65536  # bytes: a theme is a short TOML file

_FALLBACK = Theme(
    name=DEFAULT_THEME,
    dark=True,
    primary="#4C9BE8",
    secondary="#8E7CC3",
    accent="#F0A24A",
    success="#5FBF6A",
    warning="#E8C547",
    error="#E5585A",
    foreground="#D8DEE9",
    background="#14171C",
    surface="#1B1F26",
    panel="#242A33",
)

_FIELDS = {f.name for f in dataclasses.fields(Theme)}
# Checked here, since Textual checks them only as the dashboard starts, and dies there.
_COLOURS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
_FLAGS = ("dark", "ansi")
_FRACTIONS = ("luminosity_spread", "text_alpha")
_VARIABLE_NAME = re.compile(r"[a-z][a-z0-9-]{0,60}")


class ThemeError(ValueError):
    """A theme file is unreadable or names a field a Theme doesn't have."""


def themes_dir() -> Path:
    """Where theme files live: $CCDASH_THEMES_DIR, else the packaged `ccdash/themes/`
    (the repository's `themes/` is a link to it)."""
    env = os.environ.get("CCDASH_THEMES_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "themes"


def load_theme_file(path: Path) -> Theme:
    """One TOML file -> a Theme; ThemeError names the file and the problem (a FIFO,
    a file over 64 KiB, nesting too deep, a name that is not plain text)."""
    try:
        data = tomllib.loads(read_small_file(path, str(path), THEME_FILE_LIMIT).decode())
    except PrivateFileError as exc:
        raise ThemeError(str(exc)) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ThemeError(f"{path}: {exc}") from None
    except RecursionError:
        raise ThemeError(f"{path}: nested too deeply") from None
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ThemeError(
            f"{path}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(_FIELDS))}"
        )
    data.setdefault("name", path.stem)
    name = data["name"]
    if not isinstance(name, str) or not name or sanitize(name, 60) != name:
        raise ThemeError(f"{path}: name must be plain text of 1 to 60 characters")
    if "primary" not in data:
        raise ThemeError(f"{path}: 'primary' is required")
    _check_types(path, data)
    try:
        theme = Theme(**data)
        known = theme.to_color_system().generate()  # parses every colour
    except (TypeError, ValueError, ColorParseError) as exc:
        raise ThemeError(f"{path}: {sanitize(exc, 200)}") from None
    known.update(theme.variables)
    for name, value in theme.variables.items():
        _check_variable(path, name, value, known)
    if theme.variables:  # each a plain value: now does it fit where it is used?
        from ccdash.tui.theme_css import variables_problem

        if problem := variables_problem(known):
            raise ThemeError(f"{path}: variables.{sanitize(problem, 200)}")
    return theme


def _check_types(path: Path, data: dict[str, Any]) -> None:
    """Each field of the type a Theme takes (TOML gives numbers, booleans, tables)."""
    for key, value in data.items():
        if key in _COLOURS:
            try:
                Color.parse(value if isinstance(value, str) else "")
            except ColorParseError:
                raise ThemeError(
                    f"{path}: {key}: expected a CSS colour (#4C9BE8, red, ...), "
                    f"got '{sanitize(value, 60)}'"
                ) from None
        if key in _FLAGS and not isinstance(value, bool):
            raise ThemeError(f"{path}: {key}: expected true or false, got {value!r}")
        if key in _FRACTIONS and not (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and 0 <= value <= 1
        ):
            raise ThemeError(f"{path}: {key}: expected a number from 0 to 1, got {value!r}")
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ThemeError(f'{path}: variables: expected a table of name = "CSS value"')


def _check_variable(path: Path, name: str, value: str, known: dict[str, str]) -> None:
    """A CSS variable the stylesheet can take: plain text, one value, known references."""
    where = f"{path}: variables.{sanitize(name, 60)}"
    if not _VARIABLE_NAME.fullmatch(name):
        raise ThemeError(f"{where}: expected a name of lowercase letters, digits and -")
    if sanitize(value, 200) != value:
        raise ThemeError(f"{where}: expected plain text, got '{sanitize(value, 60)}'")
    try:
        tokens = tokenize_values({name: value})[name]
    except TokenError:
        raise ThemeError(f"{where}: not a CSS value: '{value}'") from None
    for token in tokens:
        if token.name == "variable_ref" and token.value[1:] not in known:
            raise ThemeError(f"{where}: refers to an unknown variable {token.value}")


@lru_cache(maxsize=1)
def _load_all(directory: str) -> tuple[dict[str, Theme], tuple[str, ...]]:
    themes: dict[str, Theme] = {}
    problems: list[str] = []
    for path in sorted(Path(directory).glob("*.toml")):
        try:
            theme = load_theme_file(path)
        except ThemeError as exc:
            problems.append(str(exc))
            continue
        themes[theme.name] = theme
    themes.setdefault(DEFAULT_THEME, _FALLBACK)
    return themes, tuple(problems)


def load_themes() -> dict[str, Theme]:
    """Every usable theme by name (the dark fallback is always there)."""
    return dict(_load_all(str(themes_dir()))[0])


def theme_problems() -> tuple[str, ...]:
    """Theme files that were skipped, and why."""
    return _load_all(str(themes_dir()))[1]


def available_themes() -> list[str]:
    """Names `--theme` accepts, default first."""
    names = sorted(load_themes())
    names.remove(DEFAULT_THEME)
    return [DEFAULT_THEME, *names]


def check_theme(name: str | None) -> str:
    """The theme to use for `name` (None -> the default); ValueError lists the valid ones."""
    if name is None:
        return DEFAULT_THEME
    names = available_themes()
    if name not in names:
        for problem in theme_problems():  # its file is there but was skipped: say why
            if Path(problem.split(": ", 1)[0]).stem == name:
                raise ValueError(f"theme {name!r} cannot be used: {problem}")
        raise ValueError(f"unknown theme {name!r}; available: {', '.join(names)}")
    return name


__all__ = [
    "DEFAULT_THEME",
    "ThemeError",
    "available_themes",
    "check_theme",
    "load_theme_file",
    "load_themes",
    "theme_problems",
    "themes_dir",
]
