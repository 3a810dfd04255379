"""One Redis connection that sends a batch of commands in one write and reads
all the replies: the broker's only way to talk to Redis.

Every read has a socket timeout (no call hangs forever). A connection error
raises `LinkDown`; the caller backs off with `Backoff` (exponential, full
jitter, so a restarted Redis is not hit by every worker at once) and retries.
Errors are redacted: a password never reaches a message or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, NoScriptError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ccdash.brokers.base import BrokerError
from ccdash.brokers.redis.scripts import SCRIPTS, Script
from ccdash.text import sanitize

Command = Sequence[Any]


class LinkDown(BrokerError):
    """Redis could not be reached (or the connection broke); retry after a backoff."""


class LinkDownAfterReplies(LinkDown):
    """The connection broke after a round trip had its replies (some NOSCRIPT), while
    the scripts were loaded again: `replies` are those replies. A command that ran (a
    read that took entries) must not be dropped with them."""

    def __init__(self, message: str, replies: list[Any]) -> None:
        super().__init__(message)
        self.replies = replies


def redact(text: str, secret: str | None) -> str:
    """`text` with the password (if any) replaced by ***."""
    return text.replace(secret, "***") if secret else text


def split_options(url: str, names: Sequence[str]) -> tuple[str, dict[str, str]]:
    """Take our own query parameters (`names`) out of a redis:// URL."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    rest = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in names:
            ours[k] = v
        else:
            rest.append((k, v))
    return urlunsplit(parts._replace(query=urlencode(rest))), ours


class Raw:
    """`n` command arguments already RESP-encoded (batches build them as they queue)."""

    __slots__ = ("data", "n")

    def __init__(self, data: bytes, n: int) -> None:
        self.data = data
        self.n = n


def pack(commands: Sequence[Command]) -> bytes:
    """RESP-encode commands (bytes, str, int, float, Raw args): the hot path's packer."""
    out: list[bytes] = []
    add = out.append
    for cmd in commands:
        header = len(out)
        add(b"")
        n = 0
        for a in cmd:
            n += 1
            if type(a) is Raw:
                add(a.data)
                n += a.n - 1
                continue
            if isinstance(a, bytes):
                b = a
            elif isinstance(a, str):
                b = a.encode()
            elif isinstance(a, int | float):
                b = repr(a).encode()
            else:
                raise TypeError(f"cannot send {type(a).__name__} to Redis")
            add(b"$%d\r\n%s\r\n" % (len(b), b))
        out[header] = b"*%d\r\n" % n
    return b"".join(out)


class Unsendable(BrokerError):
    """A command that cannot be encoded for Redis (e.g. text with a lone surrogate)."""


def encode_command(cmd: Command) -> tuple[Raw]:
    """`cmd` RESP-encoded now, as a one-argument command `pack` sends as is.
    Unsendable if it cannot be encoded: found while queueing, one bad command
    fails alone instead of failing every batch it would ride in."""
    try:
        packed = pack([cmd])
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise Unsendable(
            f"cannot send {sanitize(cmd[0] if cmd else '?', 40)} to Redis: {sanitize(exc, 200)}"
        ) from None
    end = packed.index(b"\r\n")
    return (Raw(packed[end + 2 :], int(packed[1:end])),)


def is_nogroup(exc: BaseException) -> bool:
    """A reply saying the stream or its consumer group is gone."""
    return isinstance(exc, ResponseError) and "NOGROUP" in str(exc)


class RedisLink:
    """A dedicated connection made from the URL's settings."""

    def __init__(self, url: str, *, timeout: float, name: str) -> None:
        self.name = name
        self.timeout = timeout
        self._pool = ConnectionPool.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # we retry ourselves, knowing what is idempotent
            protocol=2,  # RESP2 replies: the shapes this module parses
        )
        self._password: str | None = self._pool.connection_kwargs.get("password")
        self._conn: Any = None
        self.client_id: int | None = None  # of the current connection (for CLIENT UNBLOCK)

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._pool.connection_class(**self._pool.connection_kwargs)
        return self._conn

    def describe(self, exc: BaseException) -> str:
        """A one-line, password-free description of an error."""
        text = str(exc) or type(exc).__name__
        return redact(text, self._password)

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        """Send `commands` in one write; return each reply or the ResponseError it got.

        NOSCRIPT replies (a restarted Redis forgot the scripts) are fixed here:
        the scripts are loaded and just those commands sent again.

        It runs in the caller's task (a task of its own per round trip cost two loop
        turns on the way out and two on the way back, on every message's path). A
        caller cancelled mid-round-trip drops the connection (the next call
        reconnects): a half-read connection is never used again.
        """
        replies = await self._roundtrip(commands)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            try:
                await self._roundtrip([("SCRIPT", "LOAD", s.source) for s in SCRIPTS.values()])
                again = await self._roundtrip([commands[i] for i in missing])
            except LinkDown as exc:
                raise LinkDownAfterReplies(str(exc), replies) from None
            for i, r in zip(missing, again, strict=True):
                replies[i] = r
        return replies

    async def _roundtrip(self, commands: Sequence[Command]) -> list[Any]:
        conn = self._connection()
        try:
            if not conn.is_connected:
                await conn.connect()
                await conn.send_packed_command(pack([("CLIENT", "ID")]), check_health=False)
                self.client_id = int(await conn.read_response())
            await conn.send_packed_command(pack(commands), check_health=False)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
            return replies
        except AuthenticationError as exc:
            await self.disconnect()
            raise BrokerError(f"Redis refused the credentials: {self.describe(exc)}") from None
        except (TimeoutError, RedisConnectionError, RedisTimeoutError, OSError) as exc:
            await self.disconnect()
            raise LinkDown(self.describe(exc)) from None
        except asyncio.CancelledError:
            # A cancelled caller (closing, or a publisher in send_now): drop the
            # half-read connection.
            await self.disconnect()
            raise
        except RedisError as exc:
            await self.disconnect()
            raise LinkDown(self.describe(exc)) from None

    async def disconnect(self) -> None:
        """Close the socket (the next call reconnects)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a broken socket may fail too
                await conn.disconnect()

    async def close(self) -> None:
        """Close for good (whoever runs a round trip has been stopped first)."""
        await self.disconnect()
        await self._pool.disconnect()


def evalsha(script: Script | str, *args: Any) -> tuple[Any, ...]:
    """The EVALSHA command for a script (by object or name), no keys, these ARGV."""
    s = SCRIPTS[script] if isinstance(script, str) else script
    return ("EVALSHA", s.sha, 0, *args)
