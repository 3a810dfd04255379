"""Command-line values checked before anything runs.

Every flag of `ccdash`, `ccdash worker` and `ccdash bench` is judged here with
one vocabulary: numbers against a stated range, output paths for "a file in a
writable directory", the broker URL (from `--broker`, `--broker-file` or
$CCDASH_BROKER) by `ccdash.brokers.check_url`. A problem is a `UsageError` whose
text names the flag, the value and what is allowed; the CLI prints it as one
line and exits 2. `guard` is the net under all of it: an unexpected exception
while checking becomes one line too, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ccdash.files import PrivateFileError, output_problem, read_owner_only
from ccdash.secret_env import CONTROL_SECRET_ENV, env_value, taken_from_environ
from ccdash.text import sanitize

BROKER_ENV = "CCDASH_BROKER"
BROKER_FILE_LIMIT = 65536  # bytes: a URL, never read whole if bigger


class UsageError(Exception):
    """A bad command line; the CLI prints it as one line and exits 2."""


# Values argparse would take for an option (and then say "expected one argument",
# naming neither the value nor the range): -inf, -nan, -1e5, besides its -1 and -.5.
_NEGATIVE_VALUE = re.compile(r"^-(\d|\.\d|inf|nan)", re.IGNORECASE)


class Parser(argparse.ArgumentParser):
    """argparse, but errors raise UsageError instead of printing usage and exiting; a
    value such as -inf reaches its option's check; an option given twice with two
    values is refused (one of them would be dropped without a word); no abbreviated
    option (`--hand` for `--handler` would slip a second one past that check)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_VALUE

    def error(self, message: str) -> NoReturn:
        """Turn argparse's complaint into one line."""
        raise UsageError(message)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """argparse's parse, after refusing an option given twice with two values."""
        argv = list(sys.argv[1:] if args is None else args)
        self._refuse_repeats(argv)
        return super().parse_known_args(argv, namespace)

    def _refuse_repeats(self, argv: list[str]) -> None:
        takes_value = {
            opt: action
            for action in self._actions
            if action.nargs is None and isinstance(action, argparse._StoreAction)
            for opt in action.option_strings
        }
        given: dict[str, tuple[str, str]] = {}
        tokens = iter(argv)
        for token in tokens:
            if token == "--":
                break
            opt, eq, value = token.partition("=")
            action = takes_value.get(opt)
            if action is None:
                continue
            if not eq:
                value = next(tokens, None)  # type: ignore[assignment]
                if value is None:
                    break  # argparse says what is missing
            first = given.setdefault(action.dest, (opt, value))
            if first[1] != value:
                raise UsageError(
                    f"{opt} given twice ({shown(first[1], 60)} and {shown(value, 60)}); "
                    "give it once"
                )


def check_theme(name: str) -> None:
    """Themes are the dashboard's; ask it (if it is installed) which exist."""
    try:
        from ccdash.tui.themes import check_theme as tui_check_theme
    except ImportError:
        return
    try:
        tui_check_theme(name)
    except ValueError as exc:
        raise UsageError(f"--theme: {exc}") from None


def shown(value: object, limit: int = 80) -> str:
    """A user's value quoted for an error line: sanitised and bounded. Not repr(),
    which doubled each backslash of the sanitiser's escapes (an ESC read as two
    backslashes and x1b)."""
    return f"'{sanitize(value, limit)}'"


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def bounded(
    kind: type[int] | type[float], lo: float, hi: float, unit: str = "", *, above: bool = False
) -> Callable[[str], Any]:
    """An argparse `type` for a number in [lo, hi] (or (lo, hi] with `above`)."""
    want = "an integer" if kind is int else "a number"
    allowed = (
        f"expected {want} greater than {_fmt(lo)} and at most {_fmt(hi)}{unit}"
        if above
        else f"expected {want} from {_fmt(lo)} to {_fmt(hi)}{unit}"
    )

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:  # includes ints too long to convert
            raise argparse.ArgumentTypeError(f"{allowed}, got {shown(text, 40)}") from None
        ok = math.isfinite(value) and (lo < value if above else lo <= value) and value <= hi
        if not ok:
            raise argparse.ArgumentTypeError(f"{allowed}, got {shown(text, 40)}")
        return value

    parse.__name__ = "number"  # argparse names the type in some messages
    return parse


def check_output_path(flag: str, path: str) -> None:
    """A file we will create or append to: not a directory, in an existing writable
    directory, writable if it exists already, and no name another user planted
    (`files.output_problem`)."""
    p = Path(path)
    if not path or "\0" in path:
        raise UsageError(f"{flag}: expected a file path, got {shown(path)}")
    if p.is_dir():
        raise UsageError(f"{flag}: {shown(path)} is a directory; expected a file path")
    parent = p.parent
    if not parent.is_dir():
        raise UsageError(f"{flag}: directory {shown(str(parent))} does not exist")
    if problem := output_problem(path):
        raise UsageError(f"{flag}: {shown(path)} {problem}")
    if p.exists():
        if not (p.is_file() or p.is_char_device() or p.is_fifo()):  # /dev/null, a pipe
            raise UsageError(f"{flag}: {shown(path)} is not a regular file")
        if not os.access(p, os.W_OK):
            raise UsageError(f"{flag}: {shown(path)} is not writable")
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: directory {shown(str(parent))} is not writable")


def check_distinct_files(named: Iterable[tuple[str, str | None]]) -> None:
    """Refuse two of these (flag, path) naming one file: an output written over an input
    (the recording a replay reads, the scenario, the control secret) or over another
    output. The same name, a link or a hard link all count; devices (/dev/null) do not."""
    seen: dict[object, str] = {}
    for flag, path in named:
        if path is None:
            continue
        key: object
        try:
            st = os.stat(path)
        except OSError:
            key = os.path.realpath(path)  # not there yet: by the name it will have
        else:
            if not stat.S_ISREG(st.st_mode):
                continue
            key = (st.st_dev, st.st_ino)
        if key in seen:
            raise UsageError(
                f"{seen[key]} and {flag} name the same file {shown(path)}; give each its own"
            )
        seen[key] = flag


def read_broker_file(path: str) -> str:
    """The broker URL kept in a file that only its owner can read."""
    try:
        data = read_owner_only(path, shown(path), BROKER_FILE_LIMIT)
        text = data.decode("utf-8")
    except PrivateFileError as exc:
        raise UsageError(f"--broker-file: {exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--broker-file: {shown(path)} is not UTF-8 text") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise UsageError(f"--broker-file: {shown(path)} must hold one line, the broker URL")
    return lines[0]


def resolve_broker(
    url: str | None, file: str | None, *, default: str | None = "memory"
) -> tuple[str | None, str]:
    """The broker URL and where it came from: --broker, else --broker-file, else
    $CCDASH_BROKER, else `default`. A password belongs in the file or the
    environment, where `ps` does not show it."""
    if url is not None and file is not None:
        raise UsageError("--broker and --broker-file: give one of them")
    if file is not None:
        return read_broker_file(file), "--broker-file"
    if url is not None:
        return url, "--broker"
    env = (env_value(BROKER_ENV) or "").strip()
    return (env, f"${BROKER_ENV}") if env else (default, "--broker")


@contextlib.contextmanager
def secrets_kept_in_memory() -> Iterator[None]:
    """For the run: the secrets given in the environment taken out of it, so that no
    process a handler starts inherits them (see ccdash.secret_env). Secrets are
    $CCDASH_CONTROL_SECRET, and $CCDASH_BROKER when its URL holds one (what
    redact_url hides: a password, a token, an option it does not know)."""
    from ccdash.brokers.urls import redact_url

    names = [CONTROL_SECRET_ENV]
    url = os.environ.get(BROKER_ENV)
    if url is not None and redact_url(url) != url:
        names.append(BROKER_ENV)
    with taken_from_environ(names):
        yield


def check_broker(url: str, flag: str = "--broker") -> str:
    """The URL's scheme if the whole URL is usable (every option, every range)."""
    from ccdash.brokers import check_url
    from ccdash.brokers.base import BrokerError

    try:
        return check_url(url)
    except BrokerError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def add_broker_flags(p: argparse.ArgumentParser, help_url: str, *, required: bool = False) -> None:
    """--broker URL and --broker-file PATH (with $CCDASH_BROKER as the fallback)."""
    p.add_argument(
        "--broker",
        metavar="URL",
        default=None,
        help=f"{help_url}. A password in the URL shows in `ps`: put the URL "
        f"in --broker-file or ${BROKER_ENV} instead"
        + (" (one of the three is required)" if required else ""),
    )
    p.add_argument(
        "--broker-file",
        metavar="PATH",
        help="read the broker URL from this file (refused if group or others can read it)",
    )


@contextlib.contextmanager
def guard(
    what: str = "the command line", passthrough: tuple[type[BaseException], ...] = ()
) -> Iterator[None]:
    """Any unexpected exception while checking input becomes a one-line UsageError
    (`passthrough`: errors that already are one-line usage errors of their own)."""
    try:
        yield
    except (UsageError, SystemExit, KeyboardInterrupt):
        raise
    except passthrough:
        raise
    except RecursionError:
        raise UsageError(f"{what}: input nested too deeply to check") from None
    except Exception as exc:  # the net under every check; see the docstring
        raise UsageError(
            f"{what} could not be checked ({type(exc).__name__}: "
            f"{sanitize(exc, 200)}); please report this as a bug"
        ) from None


__all__ = [
    "BROKER_ENV",
    "UsageError",
    "add_broker_flags",
    "bounded",
    "check_broker",
    "check_distinct_files",
    "check_output_path",
    "guard",
    "read_broker_file",
    "resolve_broker",
    "shown",
]
