"""Secrets handed to ccdash in its environment: read at start, then taken out of it.

Every process ccdash or a handler starts inherits the environment, and any process
of the same user can read /proc/<pid>/environ. So for the length of a run a secret
given there ($CCDASH_CONTROL_SECRET, a $CCDASH_BROKER URL with a password) lives in
memory only: removed from os.environ, so children do not inherit it, and blanked
(zero bytes) in the environment block the process was started with, which is what
/proc/<pid>/environ shows (Linux; best effort, elsewhere only os.environ).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

CONTROL_SECRET_ENV = "CCDASH_CONTROL_SECRET"  # the fleet's control secret
_taken: dict[str, str] = {}  # name -> value, for the run in progress


def env_value(name: str) -> str | None:
    """$name as the process was given it: its value in os.environ, else the one taken
    out of it for the run in progress; None when it has neither."""
    value = os.environ.get(name)
    return value if value is not None else _taken.get(name)


@contextlib.contextmanager
def taken_from_environ(names: Iterable[str]) -> Iterator[None]:
    """Take the variables `names` (those set) out of the environment for the block,
    their values kept for `env_value`; after it they are back in os.environ (for an
    in-process caller: a test, an embedding program), the startup block stays blank."""
    taken = {}
    for name in names:
        value = os.environ.get(name)
        if value is None or name in _taken:
            continue
        _blank_in_startup_block(name)
        del os.environ[name]  # unsetenv: the children's environment no longer has it
        taken[name] = _taken[name] = value
    try:
        yield
    finally:
        for name, value in taken.items():
            del _taken[name]
            os.environ.setdefault(name, value)


def _blank_in_startup_block(name: str) -> None:
    """Overwrite the value of `name` with zero bytes in the environment block the kernel
    gave the process (/proc/self/stat's env_start..env_end); only that block's bytes
    are written, never memory Python or libc allocated. Silent where it cannot."""
    prefix = os.fsencode(name) + b"="
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        start, end = int(fields[47]), int(fields[48])  # fields 50 and 51 of proc(5)
        with open("/proc/self/environ", "rb") as f:
            block = f.read(end - start)
    except (OSError, ValueError, IndexError):
        return  # not Linux, or a kernel that hides them
    try:
        import ctypes  # here: a Python built without _ctypes still runs ccdash
    except ImportError:
        return
    offset = 0
    for entry in block.split(b"\0"):
        if entry.startswith(prefix):
            at = start + offset + len(prefix)
            ctypes.memset(at, 0, len(entry) - len(prefix))
        offset += len(entry) + 1
