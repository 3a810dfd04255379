"""Files that may hold message data or audit history: owner-only, whatever the umask.

Every file ccdash writes (report, log, recording, plot, audit) is opened here, so
one set of rules keeps a run's data from other users, in a shared /tmp too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import IO, BinaryIO


class UnsafeOutputError(PermissionError):
    """An output path ccdash will not write through; `strerror` says why in one line."""

    def __init__(self, path: str | os.PathLike[str], why: str) -> None:
        super().__init__(errno.EPERM, why, os.fspath(path))


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def output_problem(path: str | os.PathLike[str]) -> str | None:
    """Why writing run data to `path` would hand it to someone else, or None.

    In a shared directory (/tmp) another user can plant the name first: a symbolic
    link to a file of ours (we would overwrite it) or a file of theirs (they would
    read what we write; root can write into any file). A link is followed only when
    it is ours or root's (/dev/stdout); a file must be ours, a device ours or root's
    (/dev/null), a pipe ours.
    """
    me = os.geteuid()
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            if st.st_uid not in (me, 0):
                return (
                    f"is a symbolic link of another user's (uid {st.st_uid}); "
                    "ccdash does not write through it"
                )
            st = os.stat(path)
    except OSError:
        return None  # not there (or a dangling link of ours): created as ours
    if stat.S_ISCHR(st.st_mode) and st.st_uid in (me, 0):
        return None
    if st.st_uid != me:
        return (
            f"belongs to another user (uid {st.st_uid}); "
            "ccdash writes run data only to a file of its own"
        )
    return None


def planted_problem(path: str | os.PathLike[str]) -> str | None:
    """Why `path` may have been planted by another user, or None: a symbolic link or a
    file in a shared directory (sticky and world-writable, like /tmp) that belongs
    neither to us nor to the directory's owner. The rule of Linux's
    fs.protected_symlinks and fs.protected_regular, which many systems leave off; for
    a file that may be shared on purpose (a SQLite queue), where `output_problem` is
    too strict."""
    try:
        st = os.lstat(path)
        parent = os.stat(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return None
    shared = parent.st_mode & stat.S_ISVTX and parent.st_mode & stat.S_IWOTH
    if not shared or st.st_uid in (os.geteuid(), parent.st_uid):
        return None
    kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "file"
    return (
        f"is a {kind} of another user's (uid {st.st_uid}) in a directory anyone can "
        "write to; ccdash does not use it"
    )


def _mine(fd: int, path: str | os.PathLike[str], was: os.stat_result | None = None) -> int:
    """`fd`, checked to be a file of ours (and the very file `was`, if given); closed
    and UnsafeOutputError if the name was swapped meanwhile."""
    st = os.fstat(fd)
    swapped = was is not None and (st.st_dev, st.st_ino) != (was.st_dev, was.st_ino)
    if swapped or (stat.S_ISREG(st.st_mode) and st.st_uid != os.geteuid()):
        os.close(fd)
        raise UnsafeOutputError(path, "was replaced while ccdash opened it")
    return fd


def _fresh_inode(path: str, was: os.stat_result, append: bool) -> int:
    """A new 0600 file renamed over `path` (a file of ours), with its old text when
    appending: anyone who opened the old one while it was readable keeps only that."""
    directory, name = os.path.split(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory or ".", prefix=f".{name}.", suffix=".tmp")
    except PermissionError:  # a directory we may not write: the file itself, made 0600
        fd = _mine(os.open(path, os.O_WRONLY | _NOFOLLOW | _CLOEXEC), path, was)
        os.fchmod(fd, 0o600)
        if append:
            os.lseek(fd, 0, os.SEEK_END)
        else:
            os.ftruncate(fd, 0)
        return fd
    try:
        if append:
            src = _mine(os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC), path, was)
            with open(src, "rb") as old, open(fd, "wb", closefd=False) as new:
                # Held from the copy to the rename: an AppendFile of another process
                # writes its line before (copied) or after (to the new file), never
                # into the old one in between.
                fcntl.flock(old.fileno(), fcntl.LOCK_EX)
                shutil.copyfileobj(old, new)
                new.flush()
                os.replace(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return fd


def _stdio_twin(st: os.stat_result) -> int | None:
    """1 or 2 when the file `st` describes is where our stdout or stderr already writes
    (`--json /dev/stdout > out.txt`, a pipe, a terminal), else None. Written through
    that descriptor (a dup, after Python's own buffer is flushed), the report follows
    what was printed: opened afresh it would write at offset 0 over it, or truncate."""
    for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
        try:
            other = os.fstat(fd)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            with contextlib.suppress(AttributeError, OSError, ValueError):
                if stream is not None and stream.fileno() == fd:
                    stream.flush()
            return fd
    return None


def _through(twin: int, st: os.stat_result) -> int:
    """A dup of our stdout or stderr (`twin`), its file made 0600 if it is a file."""
    fd = os.dup(twin)
    if stat.S_ISREG(st.st_mode):
        os.fchmod(fd, 0o600)
    return fd


def _private_fd(path: str | os.PathLike[str], append: bool, wait: bool = True) -> int:
    """An fd to write run data to `path`, the file owner-only (see `output_problem`).

    A new name is created 0600 (never through a link); a file of ours is replaced by a
    fresh 0600 one (its text kept when appending), unless it is 0600 already, has one
    name, and we append; a link of ours or root's, a device or a pipe is opened as it is.
    A name that leads to where our stdout or stderr writes (`--json /dev/stdout >
    out.txt`) is written through that descriptor, never truncated (`_stdio_twin`).
    Without `wait`, a named pipe nobody reads is an OSError (ENXIO) at once, where
    opening it would wait for a reader (on the event loop: the whole run, for ever).
    """
    path = os.fspath(path)
    mode = os.O_WRONLY | (os.O_APPEND if append else 0) | _CLOEXEC
    for _ in range(3):  # the name may change under us; each turn judges it afresh
        if problem := output_problem(path):
            raise UnsafeOutputError(path, problem)
        try:
            st: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is None:
            try:
                fd = os.open(path, mode | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
            except FileExistsError:
                continue
            os.fchmod(fd, 0o600)  # whatever the umask
            return fd
        if (twin := _stdio_twin(st)) is not None:  # `--json out.txt > out.txt`
            return _through(twin, st)
        if stat.S_ISREG(st.st_mode):
            try:
                # In place only with one name: a hard link planted in /tmp to a file of
                # ours (~/.ssh/authorized_keys) must not take our lines.
                if append and not st.st_mode & 0o077 and st.st_nlink == 1:
                    return _mine(os.open(path, mode | _NOFOLLOW), path, st)
                fd = _fresh_inode(path, st, append)
            except UnsafeOutputError:
                continue
            if append:
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
            return fd
        if not wait and stat.S_ISFIFO(st.st_mode):
            fd = _mine(_open_pipe_now(path, mode), path)
        else:
            fd = _mine(os.open(path, mode | os.O_CREAT, 0o600), path)  # a link of ours, /dev/null
        st = os.fstat(fd)
        if (twin := _stdio_twin(st)) is not None:  # /dev/stdout: the shell's `> out.txt`
            os.close(fd)
            return _through(twin, st)
        if stat.S_ISREG(st.st_mode):
            os.fchmod(fd, 0o600)
            if not append:
                os.ftruncate(fd, 0)
        return fd
    raise UnsafeOutputError(path, "keeps changing while ccdash opens it")


def _open_pipe_now(path: str, mode: int) -> int:
    """Open a named pipe for writing if a reader has it open, else OSError (ENXIO)."""
    try:
        fd = os.open(path, mode | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, "a named pipe that no process reads", path) from None
        raise
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


def open_private(path: str | os.PathLike[str], *, append: bool = False) -> IO[str]:
    """Open `path` for writing text, owner-only (0600) whatever was there: see
    `_private_fd`. UnsafeOutputError (an OSError) for a name another user planted."""
    fd = _private_fd(path, append)
    try:
        return os.fdopen(fd, "a" if append else "w", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def open_private_binary(path: str | os.PathLike[str], *, wait: bool = True) -> BinaryIO:
    """`open_private` for bytes (a recording), truncated; `wait`: see `_private_fd`."""
    fd = _private_fd(path, False, wait)
    try:
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


class AppendFile:
    """A file of lines (a log, an audit trail) that other ccdash processes may append to
    as well: owner-only like `open_private`, and no line lost or cut into another.

    Each line is one write on an O_APPEND descriptor, made under a shared lock once the
    name is seen to still lead to this file. Another process opening the name may move
    its text to a fresh 0600 file (the file had become readable by others, or got a
    second name); it does so under an exclusive lock, and the next line here follows
    the name to the new file (as it does a log rotated away)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd = _private_fd(self.path, True)
        self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        self.closed = False

    def write_line(self, line: str) -> None:
        """Append `line` (ending in a newline) whole; OSError if the write fails."""
        data = line.encode("utf-8")
        for _ in range(3):
            if not self._regular:  # /dev/null, a pipe, a terminal: as it is
                _write_all(self._fd, data)
                return
            fcntl.flock(self._fd, fcntl.LOCK_SH)
            try:
                if self._names_this_file():
                    _write_all(self._fd, data)
                    return
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            fd = _private_fd(self.path, True)  # moved, removed or rotated: follow the name
            os.close(self._fd)
            self._fd, self._regular = fd, stat.S_ISREG(os.fstat(fd).st_mode)
        raise UnsafeOutputError(self.path, "keeps changing while ccdash appends to it")

    def _names_this_file(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(self._fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def close(self) -> None:
        """Close the file (again: nothing)."""
        if not self.closed:
            self.closed = True
            os.close(self._fd)


def _write_all(fd: int, data: bytes) -> None:
    """One write; the rest after a short one (a disk nearly full), never dropped."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Open `path` as an AppendFile, append `line`, close it."""
    f = AppendFile(path)
    try:
        f.write_line(line)
    finally:
        f.close()


def write_private(path: str | Path, text: str) -> None:
    """Replace the file's contents with `text`, the file owner-only (0600)."""
    with open_private(path) as fh:
        fh.write(text)


class PrivateFileError(ValueError):
    """A small file (a secret, a theme, a recording) cannot be used; the text says why,
    `why` says it in a word for a caller that words it its own way: "missing",
    "directory", "not-regular", "readable" (by others), "too-large" or "unreadable"."""

    def __init__(self, text: str, why: str = "unreadable") -> None:
        super().__init__(text)
        self.why = why


_CHUNK = 1 << 20  # bytes read at a time: a large limit never allocates its whole size


def read_small_file(
    path: str | os.PathLike[str], shown: str, limit: int, *, owner_only: bool = False
) -> bytes:
    """The bytes of a file that is meant to be small (a broker URL, a secret, a theme) or
    bounded (a recording).

    Refused (PrivateFileError, `shown` naming the file) before a byte is read when it
    is not a regular file (a FIFO would wait for a writer for ever), when it is over
    `limit` bytes (never read into memory), and with `owner_only` when group or others
    have any access. A file that grows past `limit` while it is read is refused too.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise PrivateFileError(f"cannot read {shown}: no such file", "missing") from None
    except OSError as exc:
        raise PrivateFileError(f"cannot read {shown}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise PrivateFileError(f"{shown} is a directory, not a regular file", "directory")
        if not stat.S_ISREG(st.st_mode):
            raise PrivateFileError(f"{shown} is not a regular file", "not-regular")
        if owner_only and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PrivateFileError(
                f"{shown} can be read by others (mode {stat.S_IMODE(st.st_mode):03o}); "
                "chmod 600 it",
                "readable",
            )
        chunks: list[bytes] = []
        got = 0
        while st.st_size <= limit and got <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise PrivateFileError(f"cannot read {shown}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if st.st_size > limit or got > limit:
        raise PrivateFileError(
            f"{shown} is over {limit} bytes; it should be a short file", "too-large"
        )
    return b"".join(chunks)


def read_owner_only(path: str | os.PathLike[str], shown: str, limit: int) -> bytes:
    """`read_small_file` of a file only its owner may access (a broker URL, a secret)."""
    return read_small_file(path, shown, limit, owner_only=True)


__all__ = [
    "AppendFile",
    "PrivateFileError",
    "UnsafeOutputError",
    "append_line",
    "open_private",
    "open_private_binary",
    "output_problem",
    "planted_problem",
    "read_owner_only",
    "read_small_file",
    "write_private",
]
