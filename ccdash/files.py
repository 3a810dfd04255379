"""Files that may hold message data or audit history: owner-only, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, BinaryIO


def _private_fd(path: str | os.PathLike[str], append: bool) -> int:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid():  # never /dev/null
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private(path: str | os.PathLike[str], *, append: bool = False) -> IO[str]:
    """Open `path` for writing text, created 0600; an existing file of ours is made
    0600 too (a report or audit log must not stay readable by other users)."""
    fd = _private_fd(path, append)
    try:
        return os.fdopen(fd, "a" if append else "w", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def open_private_binary(path: str | os.PathLike[str]) -> BinaryIO:
    """`open_private` for bytes (a recording), truncated."""
    fd = _private_fd(path, False)
    try:
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def write_private(path: str | Path, text: str) -> None:
    """Replace the file's contents with `text`, the file owner-only (0600)."""
    with open_private(path) as fh:
        fh.write(text)


class PrivateFileError(ValueError):
    """A small file (a secret, a theme) cannot be used; the text says why."""


def read_small_file(
    path: str | os.PathLike[str], shown: str, limit: int, *, owner_only: bool = False
) -> bytes:
    """The bytes of a file that is meant to be small (a broker URL, a secret, a theme).

    Refused (PrivateFileError, `shown` naming the file) before a byte is read when it
    is not a regular file (a FIFO would wait for a writer for ever), when it is over
    `limit` bytes (never read into memory), and with `owner_only` when group or others
    have any access.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise PrivateFileError(f"cannot read {shown}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PrivateFileError(f"{shown} is not a regular file")
        if owner_only and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PrivateFileError(
                f"{shown} can be read by others (mode {stat.S_IMODE(st.st_mode):03o}); chmod 600 it"
            )
        data = os.read(fd, limit + 1)
    except OSError as exc:
        raise PrivateFileError(f"cannot read {shown}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise PrivateFileError(f"{shown} is over {limit} bytes; it should be a short file")
    return data


def read_owner_only(path: str | os.PathLike[str], shown: str, limit: int) -> bytes:
    """`read_small_file` of a file only its owner may access (a broker URL, a secret)."""
    return read_small_file(path, shown, limit, owner_only=True)


__all__ = [
    "PrivateFileError",
    "open_private",
    "open_private_binary",
    "read_owner_only",
    "read_small_file",
    "write_private",
]
