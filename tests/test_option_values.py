"""Command-line values that argparse alone gets wrong: a value that starts with '-' but
is no number argparse knows (-inf, -nan, -1e5) and an option given twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccdash import cli


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line (and nothing on stdout)."""
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured
    return captured.err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--demo", "--duration", "-inf"], "--duration: expected a number greater than 0"),
        (["--demo", "--duration", "-nan"], "got '-nan'"),
        (["--demo", "--duration", "-1e5"], "got '-1e5'"),
        (["--demo", "--seed", "-1e3"], "--seed: expected an integer from 0"),
        (["worker", "--handler", "m:f", "--concurrency", "-inf"], "--concurrency: expected"),
        (["bench", "--messages", "-1e3"], "--messages: expected"),
    ],
)
def test_a_negative_value_argparse_takes_for_an_option_names_value_and_range(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was 'argument --duration: expected one argument': no value, no range."""
    assert cli.main(argv) == 2
    err = one_line(capsys)
    assert says in err and "expected one argument" not in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["--demo", "--json", "{a}", "--json", "{b}"],
        ["--demo", "--duration", "1", "--duration=2"],
        ["--demo", "--seed", "1", "--seed", "2"],
        ["--demo", "--scenario", "default", "--scenario", "batch"],
        ["replay", "{a}", "--report", "--json", "{a}.json", "--json", "{b}"],
        ["worker", "--handler", "m:f", "--handler", "m:g"],
    ],
)
def test_an_option_given_twice_with_two_values_is_refused(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--json a --json b` wrote b only, a silently never; one value wins silently for
    the others. Refused before anything runs, naming the option and both values."""
    argv = [a.format(a=tmp_path / "a", b=tmp_path / "b") for a in argv]
    assert cli.main(argv) == 2
    err = one_line(capsys)
    assert "given twice" in err, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_same_value_twice_and_flags_twice_are_fine(capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing is lost by `--seed 3 --seed 3` or `--demo --demo`: not refused for that."""
    assert cli.main(["--demo", "--demo", "--seed", "3", "--seed", "3", "--theme", "nope"]) == 2
    assert "unknown theme 'nope'" in one_line(capsys)


def test_python_m_ccdash_worker_takes_no_abbreviated_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`python -m ccdash.worker` (the worker's own parser) refuses `--hand` as `ccdash
    worker` does: an abbreviation would slip a second --handler past the twice-given
    check (the last one silently won)."""
    from ccdash import worker

    argv = ["--broker", "redis://127.0.0.1:1/0", "--handler", "ccdash.demo:handle"]
    assert worker.main([*argv, "--hand", "ccdash.demo:handle_fast"]) == 2
    assert "unrecognized arguments: --hand ccdash.demo:handle_fast" in one_line(capsys)
