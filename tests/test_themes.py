"""Theme files from $CCDASH_THEMES_DIR: a broken one is skipped, never a hang or a crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ccdash import cli
from ccdash.tui.themes import available_themes, theme_problems

GOOD = 'name = "mine"\ndark = true\nprimary = "#4C9BE8"\n'


def test_a_broken_theme_file_is_skipped_and_the_others_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A theme file nested too deeply (RecursionError: every --theme failed with 'the
    command line: input nested too deeply'), a FIFO (reading it never ended), one of
    megabytes, or one whose name carries an escape sequence is skipped and named;
    the good one and the built-in dark theme are offered."""
    (tmp_path / "good.toml").write_text(GOOD)
    (tmp_path / "deep.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    os.mkfifo(tmp_path / "fifo.toml", 0o600)
    (tmp_path / "big.toml").write_text(GOOD + "# " + "x" * 2_000_000 + "\n")
    (tmp_path / "evil.toml").write_text('name = "e\\u001b]52;c;QQ==\\u0007"\nprimary = "#fff"\n')
    monkeypatch.setenv("CCDASH_THEMES_DIR", str(tmp_path))
    assert available_themes() == ["dark", "mine"]
    problems = "\n".join(theme_problems())
    for name in ("deep.toml", "fifo.toml", "big.toml", "evil.toml"):
        assert name in problems, (name, problems)
    assert "\x1b" not in problems
    assert cli.main(["--demo", "--theme", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ccdash: error: --theme: unknown theme 'nope'; available: dark, mine")


BAD_VALUES = {
    "colour-not-a-colour": 'primary = "notacolor"\n',
    "colour-a-number": "primary = 5\n",
    "dark-a-string": 'primary = "#fff"\ndark = "yes"\n',
    "alpha-out-of-range": 'primary = "#fff"\ntext_alpha = 7.5\n',
    "variable-escape": 'primary = "#fff"\nvariables = { border = "\\u001b[31m" }\n',
    "variable-a-number": 'primary = "#fff"\nvariables = { border = 5 }\n',
    "variable-unknown-ref": 'primary = "#fff"\nvariables = { border = "$nope" }\n',
    "variable-breaks-css": 'primary = "#fff"\nvariables = { border = "red; } Screen { x" }\n',
    # one plain CSS value, but not of the kind the stylesheet uses it as: Textual printed
    # "CSS parsing failed" with its error panels and ccdash exited 0
    "variable-wrong-kind-colour": (
        'primary = "#fff"\nvariables = { footer-key-foreground = "bold" }\n'
    ),
    "variable-wrong-kind-border": 'primary = "#fff"\nvariables = { border = "solid red 3" }\n',
    "variable-wrong-kind-style": (
        'primary = "#fff"\nvariables = { block-cursor-text-style = "12px" }\n'
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_a_theme_with_a_bad_value_is_refused_before_the_dashboard_starts(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A colour that is not one, a boolean that is a string, a CSS variable that breaks the
    stylesheet: the file is skipped and named, and `--theme` on it is one line, exit 2.
    It was offered, and the dashboard then died in Textual with a traceback (and a raw
    escape sequence from the file on the terminal)."""
    (tmp_path / "bad.toml").write_text('name = "bad"\n' + BAD_VALUES[case])
    monkeypatch.setenv("CCDASH_THEMES_DIR", str(tmp_path))
    assert available_themes() == ["dark"]
    assert "bad.toml" in "\n".join(theme_problems())
    assert cli.main(["--theme", "bad"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("ccdash: error: --theme: "), err
    assert "bad.toml" in err and "\x1b" not in err


@pytest.mark.parametrize(
    "colour",
    ["transparent", "ansi_red", "ansi_default", "hsl(200, 50%, 50%)", "rgba(10,20,30,0.5)"],
)
def test_a_colour_textual_takes_is_one_the_dashboard_can_draw(colour: str) -> None:
    """The palette hands theme colours to Rich, which does not read `transparent`, hsl()
    or rgba(): a theme with `primary = "transparent"` passed the check and the dashboard
    died at its first header with a traceback (ColorParseError)."""
    from rich.style import Style
    from textual.theme import Theme

    from ccdash.tui.format import Palette

    palette = Palette.from_theme(
        Theme(
            name="t",
            primary=colour,
            secondary=colour,
            accent=colour,
            foreground=colour,
            background=colour,
            success=colour,
            warning=colour,
            error=colour,
        )
    )
    for field in ("ok", "warn", "bad", "accent", "primary", "info", "muted"):
        Style(color=getattr(palette, field))  # raises ColorParseError if Rich cannot
