"""`--handler pkg.module:func`: the user's async handler, loaded with every failure of
the user's code (an import that calls sys.exit, a lookup that raises) a one-line
usage error, never a traceback or another exit status."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from ccdash.hints import did_you_mean, is_async_callable
from ccdash.interrupts import describe_error, is_ctrl_c
from ccdash.text import sanitize
from ccdash.validate import UsageError


def load_handler(spec: str) -> Callable[..., Any]:
    """`pkg.module:func` -> the async function; UsageError says what is wrong."""
    m = re.fullmatch(r"([A-Za-z_][\w.]*):([A-Za-z_][\w.]*)", spec)
    if not m:
        raise UsageError(
            f"--handler: expected module:function (like mypkg.jobs:handle), got {spec!r}"
        )
    module_name, attr = m.groups()
    if os.getcwd() not in sys.path:  # modules next to you import; last, unlike `python -m`,
        sys.path.append(os.getcwd())  # so a json.py someone left in /tmp shadows nothing
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UsageError(f"--handler: cannot import module {module_name!r} ({exc})") from None
    except BaseException as exc:  # the user's module failed while importing, sys.exit too
        if is_ctrl_c(exc):
            raise
        failed = describe_error(exc)
        raise UsageError(f"--handler: importing {module_name!r} failed: {failed}") from None
    try:
        return _handler_in(module, spec, module_name, attr)
    except UsageError:
        raise
    except BaseException as exc:  # its lookup ran the user's code (__getattr__, a property)
        if is_ctrl_c(exc):
            raise
        raise UsageError(f"--handler: looking up {spec} failed: {describe_error(exc)}") from None


def _handler_in(module: Any, spec: str, module_name: str, attr: str) -> Callable[..., Any]:
    """The async callable `attr` (dotted) of `module`; UsageError says what is wrong."""
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise UsageError(
                f"--handler: {module_name!r} has no {attr!r}{did_you_mean(part, names)}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"--handler: {spec} is of type {type(obj).__name__}, not a function")
    if not is_async_callable(obj):
        raise UsageError(
            f"--handler: {spec} is not async; define it with `async def "
            f"{attr.split('.')[-1]}(delivery)`"
        )
    _takes_one_argument(obj, spec)
    return obj  # type: ignore[no-any-return]


def _takes_one_argument(obj: Any, spec: str) -> None:
    """A handler is called with one positional argument (the delivery, or a batch's
    list): refuse one that cannot be, rather than fail every message to the DLQ."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # no signature to read (some builtins): trust it
        return
    try:
        signature.bind(None)
    except TypeError:
        raise UsageError(
            f"--handler: {spec} takes {sanitize(str(signature), 200)}; a handler is "
            "called with one argument, the delivery"
        ) from None
