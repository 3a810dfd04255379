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
