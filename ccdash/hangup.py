"""Writing to a terminal that may be gone.

A closed terminal window or ssh session sends SIGHUP, which the dashboard, the demo
and the worker take as a graceful stop (`aio.STOP_SIGNALS`); from then on every write
to that terminal fails with EIO. What was shown there is lost anyway; the run, its JSON
report, its log and its recording must not be: so output to the terminal goes quiet
instead of raising. A closed pipe (EPIPE, `ccdash --demo | head`) still raises: the
CLI ends the run on it (exit 141).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import Any, TextIO


def silence(stream: TextIO) -> None:
    """Point `stream`'s descriptor at /dev/null: what is still buffered for it (and the
    interpreter's flush at exit, which would fail again: exit status 120) goes nowhere."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


class HangupSafe:
    """A terminal stream that goes quiet once its terminal hung up (EIO)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False

    def _failed(self, exc: OSError) -> None:
        if exc.errno != errno.EIO:
            raise exc
        self.gone = True
        silence(self.stream)

    def write(self, text: str) -> int:
        """Write, unless the terminal is gone."""
        if not self.gone:
            try:
                return self.stream.write(text)
            except OSError as exc:
                self._failed(exc)
        return len(text)

    def flush(self) -> None:
        """Flush, unless the terminal is gone."""
        if not self.gone:
            try:
                self.stream.flush()
            except OSError as exc:
                self._failed(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)  # isatty, fileno, encoding, ...


def tell(line: str, stream: TextIO | None = None) -> None:
    """Print one line to a terminal that may be gone (then it is dropped)."""
    out = HangupSafe(stream or sys.stdout)
    out.write(line + "\n")
    out.flush()


__all__ = ["HangupSafe", "silence", "tell"]
