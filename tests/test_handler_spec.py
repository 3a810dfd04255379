"""`--handler module:func` names a function ccdash can call with one delivery; one that
cannot be (two required parameters, none at all, keyword-only ones) is a usage error
before the run, not a run whose every message fails to the DLQ."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccdash import cli
from ccdash.handler_spec import load_handler
from ccdash.validate import UsageError

MODULE = """
async def two(delivery, extra): ...
async def none(): ...
async def keyword_only(*, delivery): ...
async def one(delivery): ...
async def defaults(delivery, retries=3, *, tag="x"): ...
async def star(*args, **kwargs): ...
class Callable_:
    async def __call__(self, delivery): ...
obj = Callable_()
class Bad:
    async def __call__(self): ...
bad_obj = Bad()
"""


@pytest.fixture
def handlers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An importable module of handlers with good and bad signatures; its name."""
    name = f"sig_handlers_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.mark.parametrize("func", ["two", "none", "keyword_only", "bad_obj"])
def test_a_handler_that_cannot_take_one_delivery_is_refused(handlers: str, func: str) -> None:
    """The refusal names the spec, its parameters and what a handler is called with."""
    with pytest.raises(UsageError) as err:
        load_handler(f"{handlers}:{func}")
    text = str(err.value)
    assert text.startswith(f"--handler: {handlers}:{func} ") and "one argument" in text, text


@pytest.mark.parametrize("func", ["one", "defaults", "star", "obj"])
def test_a_handler_that_takes_one_delivery_loads(handlers: str, func: str) -> None:
    """Extra parameters with defaults, *args and callable objects are fine."""
    assert callable(load_handler(f"{handlers}:{func}"))


def test_the_command_line_refuses_it_in_one_line(
    handlers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ccdash --demo --handler m:two`: exit 2 before anything runs, one line."""
    assert cli.main(["--demo", "--duration", "1", "--handler", f"{handlers}:two"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "one argument" in captured.err, captured.err
    assert captured.out == ""
