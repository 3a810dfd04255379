"""Opening the SQLite broker's file: URL, permissions, schema and its version.

Every refusal is a `SqliteOpenError` whose one-line message names the path and
the problem (missing directory, read-only file, newer schema, not a database).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit

from ccdash.brokers.base import BrokerBusy, BrokerError
from ccdash.brokers.redact import redact_url, unknown_option
from ccdash.files import planted_problem

T = TypeVar("T")
log = logging.getLogger("ccdash.brokers.sqlite")

SCHEMA_VERSION = 1

# Message states (the `state` column).
READY, DELAYED, LEASED, DEAD = 0, 1, 2, 3

# What each durability setting means for `PRAGMA synchronous` in WAL mode.
DURABILITY = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}

PAGE_SIZE = 1024
BUSY_TIMEOUT_MS = 10_000  # per BEGIN IMMEDIATE attempt; the writer retries after that
READ_BUSY_TIMEOUT_MS = 2_000  # reads on the event loop: WAL readers wait only in rare moments
# How long another process's write lock is waited out past the busy timeout: by an
# open (joining the file, creating its tables, switching it to WAL) and by the writer
# retrying a batch that failed for a passing reason (writer.py). Past it the open or
# the write fails with one line, rather than hanging unseen behind a lock nobody
# will release.
LOCK_PATIENCE = 300.0

DDL = """
CREATE TABLE IF NOT EXISTS msgs (
    id          INTEGER PRIMARY KEY,     -- delivery order within a priority (new on redrive)
    mid         TEXT    NOT NULL,        -- the public message id
    priority    INTEGER NOT NULL,
    state       INTEGER NOT NULL,        -- 0 ready, 1 delayed, 2 leased, 3 dead
    body        BLOB    NOT NULL,
    is_json     INTEGER NOT NULL,
    published   REAL    NOT NULL,        -- wall-clock time of the publish
    attempt     INTEGER NOT NULL DEFAULT 0,
    deliveries  INTEGER NOT NULL DEFAULT 0,  -- every delivery, never given back: receipts
    due         REAL    NOT NULL DEFAULT 0,  -- wall clock: lease deadline / visible again / died
    owner       TEXT,                    -- the broker instance holding the lease
    holder      TEXT,                    -- the consumer holding the lease
    history     TEXT,                    -- JSON list of failed deliveries, once there is one
    reason      TEXT,                    -- dead: why
    last_error  TEXT,                    -- dead: the last error
    dseq        INTEGER                  -- dead: order of dying
);
CREATE INDEX IF NOT EXISTS msgs_ready ON msgs(priority DESC, id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS msgs_delayed ON msgs(due) WHERE state = 1;
CREATE INDEX IF NOT EXISTS msgs_leased ON msgs(due) WHERE state = 2;
CREATE INDEX IF NOT EXISTS msgs_dead ON msgs(dseq) WHERE state = 3;
CREATE TABLE IF NOT EXISTS dedup (
    key      TEXT PRIMARY KEY,
    mid      TEXT NOT NULL,
    expires  REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_expires ON dedup(expires);
CREATE TABLE IF NOT EXISTS counters (
    k              INTEGER PRIMARY KEY CHECK (k = 0),
    gen            INTEGER NOT NULL,     -- bumped by every write transaction
    seq            INTEGER NOT NULL,     -- last message row id handed out
    dseq           INTEGER NOT NULL,
    ready          INTEGER NOT NULL,
    delayed        INTEGER NOT NULL,
    leased         INTEGER NOT NULL,
    dead           INTEGER NOT NULL,
    published      INTEGER NOT NULL,
    acked          INTEGER NOT NULL,
    dead_lettered  INTEGER NOT NULL,
    redelivered    INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters VALUES (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
CREATE TABLE IF NOT EXISTS owners (
    token    TEXT PRIMARY KEY,           -- one per open broker instance
    pid      INTEGER NOT NULL,
    host     TEXT NOT NULL,
    started  REAL NOT NULL
);
"""

COUNTER_COLUMNS = (
    "gen",
    "seq",
    "dseq",
    "ready",
    "delayed",
    "leased",
    "dead",
    "published",
    "acked",
    "dead_lettered",
    "redelivered",
)


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether an error only means another connection holds a lock."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc)


# Which failed writes are worth waiting out (the writer retries those, see writer.py):
# only another connection's lock (SQLITE_BUSY and SQLITE_LOCKED, all their extended
# codes) and WAL's lock-protocol race (SQLITE_PROTOCOL), which SQLite itself says to
# retry. Everything else is permanent and fails the write at once: a full disk
# (SQLITE_FULL) or a read-only file needs an operator, an I/O error (SQLITE_IOERR) or
# corruption (SQLITE_CORRUPT, SQLITE_NOTADB) is not to be written over again and again,
# and an error of one operation's data fails that operation alone.
_TRANSIENT = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_PROTOCOL)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed write may succeed if tried again later (see _TRANSIENT)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _TRANSIENT  # the primary code of an extended one
    return is_busy(exc) or "locking protocol" in str(exc)


def patiently(fn: Callable[[], T], path: str) -> T:
    """Run `fn`, waiting out another process's lock: the busy timeout waits inside
    SQLite, then we back off and try again, for up to LOCK_PATIENCE seconds (said
    once, when the wait starts); past that, BrokerBusy names the file and the lock."""
    since = time.monotonic()
    said = False
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            if not said:  # after the first busy timeout: a moment's lock is not news
                said = True
                log.warning(
                    "sqlite broker %s: another process holds the write lock; waiting for it "
                    "(up to %.0f s)",
                    path,
                    LOCK_PATIENCE,
                )
            waited = time.monotonic() - since
            if waited >= LOCK_PATIENCE:
                raise BrokerBusy(
                    f"sqlite broker {path}: another process holds the write lock "
                    f"({exc}, still after {waited:.0f} s)"
                ) from None
            time.sleep(min(random.uniform(0.01, 0.1), LOCK_PATIENCE - waited))


def begin_immediate(conn: sqlite3.Connection, path: str) -> None:
    """Start a write transaction, waiting for the lock up to LOCK_PATIENCE."""
    patiently(lambda: conn.execute("BEGIN IMMEDIATE"), path)


class SqliteOpenError(BrokerError):
    """The SQLite broker cannot use its file; the message names the path and why."""


@dataclass(frozen=True, slots=True)
class SqliteTarget:
    """Where the store lives and how hard each commit holds on to it."""

    path: str
    durability: str = "normal"

    @property
    def synchronous(self) -> str:
        """The `PRAGMA synchronous` value of this durability."""
        return DURABILITY[self.durability]


def parse_url(url: str) -> SqliteTarget:
    """`sqlite:///relative.db` or `sqlite:////abs/path.db`, optionally `?durability=...`."""
    parts = urlsplit(url)
    url = redact_url(url)  # what the errors show: an unknown option's value may be a secret
    if parts.scheme != "sqlite":
        raise SqliteOpenError(f"not a sqlite URL: {url!r}")
    if parts.netloc:
        raise SqliteOpenError(
            f"sqlite URL {url!r} names a host; use sqlite:///relative.db or sqlite:////abs/path.db"
        )
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path or path == ":memory:":
        raise SqliteOpenError(f"sqlite URL {url!r} needs a file path, e.g. sqlite:///queue.db")
    durability = None
    try:  # strict: a bare word (a token, perhaps) is refused without being echoed
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise SqliteOpenError(
            f"sqlite URL {url!r}: malformed query; expected ?durability=..."
        ) from None
    for key, value in pairs:
        if key != "durability":
            raise SqliteOpenError(f"sqlite URL {url!r}: {unknown_option(key, ['durability'])}")
        if durability is not None:
            raise SqliteOpenError(f"sqlite URL {url!r}: option 'durability' given twice")
        if value not in DURABILITY:
            raise SqliteOpenError(
                f"sqlite URL {url!r}: durability must be full, normal or off, not {value!r}"
            )
        durability = value
    return SqliteTarget(path, durability or "normal")


def check_path(path: str) -> None:
    """Refuse a missing directory, a read-only file or directory, a non-file, or a name
    another user planted in a shared directory (`files.planted_problem`)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        hint = ""
        if not os.path.isabs(path) and os.path.isdir(os.path.dirname("/" + path)):
            # sqlite:///tmp/x.db is the relative tmp/x.db; /tmp/x.db needs four slashes
            hint = f" (for the absolute path /{path} write sqlite:////{path}: four slashes)"
        raise SqliteOpenError(f"sqlite broker {path}: directory {directory} does not exist{hint}")
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):  # SQLite's files
        if problem := planted_problem(name):
            raise SqliteOpenError(f"sqlite broker {path}: {name} {problem}")
    if os.path.exists(path):
        if not os.path.isfile(path):
            raise SqliteOpenError(f"sqlite broker {path}: not a regular file")
        # The mode bits as well: root may write anywhere, but a file made read-only
        # was made so on purpose.
        if not os.access(path, os.R_OK | os.W_OK) or not os.stat(path).st_mode & stat.S_IWUSR:
            raise SqliteOpenError(f"sqlite broker {path}: file is read-only (need read and write)")
    # WAL mode creates -wal and -shm beside the file: the directory must take them.
    if not os.access(directory, os.W_OK | os.X_OK) or not os.stat(directory).st_mode & stat.S_IWUSR:
        raise SqliteOpenError(f"sqlite broker {path}: directory {directory} is read-only")


def create_private(path: str) -> None:
    """Create the file owner-only (0600) if it does not exist yet, whatever the umask.

    SQLite gives the -wal and -shm files the main file's permissions, so they
    are owner-only too."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def tighten_companions(path: str) -> None:
    """Make existing -wal/-shm files owner-only if the main file is (belt and braces)."""
    try:
        if os.stat(path).st_mode & 0o077:
            return  # the user shares the file on purpose: leave its companions alike
    except OSError:
        return
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path + suffix).st_mode & 0o077:
                os.chmod(path + suffix, 0o600)


def connect(target: SqliteTarget, busy_ms: int | None = None) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN IMMEDIATE ourselves), WAL on.
    `busy_ms`: how long a statement waits for a lock (default BUSY_TIMEOUT_MS)."""
    path = target.path
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
    except sqlite3.Error as exc:
        raise SqliteOpenError(f"sqlite broker {path}: cannot open: {exc}") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS if busy_ms is None else busy_ms}")
        # Small pages: a commit writes every page it touched, and ours touch a few rows each.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # only takes on a new file
        mode = patiently(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0], path)
        if str(mode).lower() != "wal":
            raise SqliteOpenError(f"sqlite broker {path}: cannot switch to WAL mode ({mode})")
        conn.execute(f"PRAGMA synchronous = {target.synchronous}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise SqliteOpenError(f"sqlite broker {path}: not a usable database: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def ensure_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create the tables on a new file; refuse a file written by a newer ccdash."""
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SqliteOpenError(
                f"sqlite broker {path}: schema version {version} is newer than this ccdash "
                f"understands ({SCHEMA_VERSION}); upgrade ccdash"
            )
        if version == SCHEMA_VERSION:
            return
        begin_immediate(conn, path)
        try:
            # Another process may have created it while we waited for the lock.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:  # one statement at a time: executescript would COMMIT
                for statement in DDL.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc) or "read-only" in str(exc):
            raise SqliteOpenError(f"sqlite broker {path}: file is read-only") from None
        raise SqliteOpenError(f"sqlite broker {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise SqliteOpenError(f"sqlite broker {path}: not a usable database: {exc}") from None
