"""Broker URLs: checked whole before anything connects, and redacted for display.

`check_url` is the one place a broker URL is judged: the scheme, the host, the
port range, the Redis database number and every query option against the known
list (with "did you mean"), each option's value against its documented range.
A bad URL raises `BrokerURLError` with one line naming the part, the value and
what is allowed; the password never appears in it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from ccdash.brokers.base import BrokerError
from ccdash.brokers.redact import NAME, redact_url, stray_at, unknown_option
from ccdash.text import sanitize

SCHEMES = ("memory", "sqlite", "redis", "rediss")
FORMS = "memory, sqlite:///FILE.db, redis://HOST:PORT/DB or rediss://HOST:PORT/DB"
MAX_DB = 2**31 - 1  # Redis' `databases` setting is an int


class BrokerURLError(BrokerError, ValueError):
    """A broker URL that cannot be used; the message says why (credentials redacted)."""


def _number(
    kind: type[float] | type[int], lo: float, hi: float, unit: str
) -> Callable[[str], str | None]:
    """A check for a number within [lo, hi]: None when fine, else what is allowed."""
    want = "an integer" if kind is int else "a number"
    allowed = (
        f"expected {want} from {lo:g} to {hi:g}{unit}"
        if kind is float
        else f"expected {want} from {int(lo)} to {int(hi)}{unit}"
    )

    def check(text: str) -> str | None:
        try:
            value = kind(text)
        except ValueError:
            return allowed
        if not (math.isfinite(value) and lo <= value <= hi):
            return allowed
        return None

    return check


def _name(text: str) -> str | None:
    if NAME.fullmatch(text):
        return None
    return "expected 1 to 100 letters, digits or _ . : @ - (starting with a letter or digit)"


def _choice(*values: str) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        return None if text in values else f"expected one of {', '.join(values)}"

    return check


def _file(text: str) -> str | None:
    import os

    return None if os.path.isfile(text) else "expected the path of an existing file"


# Every query option a redis URL may carry, with its check. Ours first (see
# ccdash.brokers.redis), then the client library's that we support.
REDIS_OPTIONS: dict[str, Callable[[str], str | None]] = {
    "queue": _name,
    "worker": _name,
    "ttl": _number(float, 0.3, 3600, " seconds"),
    "fetch": _number(int, 1, 10_000, " messages"),
    "timeout": _number(float, 0.01, 300, " seconds"),
    "db": _number(int, 0, MAX_DB, ""),
}
TLS_OPTIONS: dict[str, Callable[[str], str | None]] = {
    "ssl_cert_reqs": _choice("none", "optional", "required"),
    "ssl_check_hostname": _choice("true", "false"),
    "ssl_ca_certs": _file,
    "ssl_certfile": _file,
    "ssl_keyfile": _file,
}


def check_url(url: str) -> str:
    """The URL's scheme if the whole URL is usable; BrokerURLError naming what is not."""
    if url == "memory":
        return "memory"
    shown = sanitize(redact_url(url), 200)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise BrokerURLError(f"bad broker URL '{shown}': {exc}") from None
    scheme = parts.scheme
    if scheme not in SCHEMES or scheme == "memory":
        raise BrokerURLError(f"unknown broker '{shown}'; expected {FORMS}")
    if scheme == "sqlite":
        from ccdash.brokers.sqlite.schema import parse_url

        if "@" in parts.netloc:  # parse_url would echo the user part, a password perhaps
            raise BrokerURLError(
                f"sqlite URL '{shown}' names a host; use sqlite:///relative.db "
                "or sqlite:////abs/path.db"
            )

        parse_url(url)  # raises SqliteOpenError (a BrokerError) naming the problem
        return scheme
    _check_redis(url, scheme, shown)
    return scheme


def _check_redis(url: str, scheme: str, shown: str) -> None:
    parts = urlsplit(url)
    where = f"redis URL '{shown}'"
    try:
        url.encode()
    except UnicodeEncodeError:  # bytes from the environment or a file: Redis cannot be sent them
        raise BrokerURLError(f"{where} is not UTF-8 text") from None
    if stray_at(parts):
        raise BrokerURLError(
            f"{where}: the user part holds '/', '?' or '#'; percent-encode them "
            "(%2F, %3F, %23) in the password"
        )
    if parts.fragment:
        raise BrokerURLError(f"{where}: unexpected #fragment")
    if not parts.hostname:
        raise BrokerURLError(f"{where}: needs a host, e.g. {scheme}://127.0.0.1:6379/0")
    try:
        parts.port  # noqa: B018 - urllib checks the port when it is read
    except ValueError:
        port = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        raise BrokerURLError(
            f"{where}: port '{sanitize(port, 40)}': expected a port from 1 to 65535"
        ) from None
    if parts.port == 0:
        raise BrokerURLError(f"{where}: port 0: expected a port from 1 to 65535")
    db = parts.path[1:] if parts.path.startswith("/") else parts.path
    if db and (problem := REDIS_OPTIONS["db"](db)):
        raise BrokerURLError(
            f"{where}: database '{sanitize(db, 40)}': {problem} (the path is the database number)"
        )
    known = {**REDIS_OPTIONS, **TLS_OPTIONS}
    seen: set[str] = set()
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise BrokerURLError(f"{where}: malformed query; expected ?name=value&...") from None
    for key, value in pairs:
        k, v = sanitize(key, 40), sanitize(value, 60)
        if key not in known:
            raise BrokerURLError(f"{where}: {unknown_option(key, known)}")
        if key in TLS_OPTIONS and scheme != "rediss":
            raise BrokerURLError(f"{where}: option '{k}' applies to TLS only; use rediss://")
        if key in seen:
            raise BrokerURLError(f"{where}: option '{k}' given twice")
        seen.add(key)
        if problem := known[key](value):
            raise BrokerURLError(f"{where}: option {k}='{v}': {problem}")
    if db and "db" in seen:
        raise BrokerURLError(f"{where}: the database is given twice (path and ?db=)")


__all__ = [
    "NAME",
    "BrokerURLError",
    "REDIS_OPTIONS",
    "SCHEMES",
    "TLS_OPTIONS",
    "check_url",
    "redact_url",
]
