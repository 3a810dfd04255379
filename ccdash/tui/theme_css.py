"""A theme's CSS variables tried against the stylesheet they will feed.

A variable can be one plain CSS value and still not fit where Textual's widgets use
it (`footer-key-foreground = "bold"` where a colour goes, `border = "solid red 3"`):
the dashboard then stopped at start with Textual's "CSS parsing failed" panels.
`variables_problem` parses the stylesheet of every widget the dashboard can show,
with the theme's variables, and names the first variable that breaks it.
"""

from __future__ import annotations

from itertools import chain
from pathlib import Path

from rich.text import Text
from textual.app import App
from textual.css.stylesheet import Stylesheet, StylesheetParseError
from textual.widget import Widget

APP_CSS = Path(__file__).with_name("app.tcss")


def _styled_classes() -> list[type]:
    """Textual's widgets and ours, with the App and Screen: every DEFAULT_CSS that can
    be in the dashboard's stylesheet (a superset of what one screen mounts)."""
    import textual.widgets

    import ccdash.tui.replay_bar
    import ccdash.tui.row_table  # noqa: F401 - their DEFAULT_CSS uses theme variables

    names: list[str] = getattr(textual.widgets, "__all__", [])
    for name in names:  # the package loads its widgets on first use
        getattr(textual.widgets, name)
    seen: list[type] = [App]
    todo: list[type] = [Widget]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        subclasses: list[type] = cls.__subclasses__()
        todo.extend(sub for sub in subclasses if sub not in seen)
    return seen


def variables_problem(variables: dict[str, str]) -> str | None:
    """None if the stylesheet parses with these variables (a theme's generated ones with
    its own on top), else which variable breaks it and how."""
    sheet = Stylesheet(variables=variables)
    for cls in _styled_classes():
        css = cls.__dict__.get("DEFAULT_CSS")
        if css:
            sheet.add_source(css, read_from=(cls.__module__, cls.__qualname__), is_default_css=True)
    sheet.read(APP_CSS)
    try:
        sheet.parse()
    except StylesheetParseError as exc:
        errors = chain.from_iterable(rule.errors for rule in exc.errors.rules)
        for token, message in errors:
            if token.referenced_by is not None:
                why = Text.from_markup(str(getattr(message, "summary", message))).plain
                return f"{token.referenced_by.name}: {why}"
        return "the stylesheet does not parse with these variables"
    return None


__all__ = ["variables_problem"]
