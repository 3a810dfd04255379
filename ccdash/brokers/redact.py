"""Broker URLs made safe to show: `redact_url` hides what may be a secret.

Below `urls.py` (which judges URLs) and the brokers' own URL parsing, so each of
them can show a URL in an error without echoing a password.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import SplitResult, unquote_plus, urlsplit

from ccdash.text import did_you_mean, sanitize

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}")  # queue and worker names
REDIS_OPTION_NAMES = frozenset({"queue", "worker", "ttl", "fetch", "timeout", "db"})
TLS_OPTION_NAMES = frozenset(
    {"ssl_cert_reqs", "ssl_check_hostname", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile"}
)
# An unknown option's name shown as given: lowercase words, as option names are; a
# token (mixed case, digits, '=' padding) is not shown.
OPTION_LIKE = re.compile(r"[a-z_]{1,32}")
NAMED_OPTIONS = frozenset({"queue", "worker"})  # the only ones whose good value may hold '@'


def known_options(scheme: str) -> frozenset[str]:
    """The query options a URL of this scheme may carry (their values are shown)."""
    if scheme == "sqlite":
        return frozenset({"durability"})
    return REDIS_OPTION_NAMES | TLS_OPTION_NAMES


def redact_url(url: str) -> str:
    """The URL with its secrets replaced by ***, safe to print or log; the host and port
    kept. Hidden: the password of the user part (`user:***@`), a user part without a
    password whole (`***@`: `redis://TOKEN@host` is how some put a token there), the
    value of any query option we do not know (`?password=...`, which an error about
    that very option would otherwise echo), a bare query word (`?TOKEN`) and a
    #fragment (never part of a broker URL: likely a cut secret). A password holding an
    unencoded `/`, `?` or `#` ends the host part early (the secret is read as the path,
    query or fragment): then all before the last `@` is hidden (`stray_at`)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable URL>"
    scheme, slashes, rest = url.partition("://")
    # (A SQLite URL names no host: an '@' in its path is part of a file name.)
    if slashes and (parts.netloc or parts.scheme != "sqlite") and stray_at(parts):
        after = redact_url(f"{scheme}://{rest.rpartition('@')[2]}")
        return f"{scheme}://***@{after.partition('://')[2]}"
    netloc = parts.netloc
    userinfo, _, host = netloc.rpartition("@")
    if password is not None:
        netloc = f"{parts.username or ''}:***@{host}"
    elif userinfo:
        netloc = f"***@{host}"
    known = known_options(parts.scheme)
    query = "&".join(
        f"{key}{sep}{value}"
        if unquote_plus(key) in known
        else (f"{shown_key(key, known)}=***" if sep else "***" if key else "")
        for key, sep, value in (pair.partition("=") for pair in parts.query.split("&"))
    )
    if netloc == parts.netloc and query == parts.query and not parts.fragment:
        return url  # nothing hidden: exactly as given
    shown = f"{parts.scheme}:{'//' if slashes else ''}{netloc}{parts.path}"
    return shown + (f"?{query}" if query else "") + ("#***" if parts.fragment else "")


def _nameable(key: str, known: Iterable[str]) -> bool:
    """Whether an unknown option's name may be shown: it reads like an option name (a
    misspelling, `password`), not like a token (`?TOKEN=`: base64 ends in '=')."""
    return bool(OPTION_LIKE.fullmatch(key) or did_you_mean(key, known))


def shown_key(key: str, known: frozenset[str]) -> str:
    """An unknown option's name as a shown URL holds it: as given, or *** (`_nameable`)."""
    return key if _nameable(unquote_plus(key), known) else "***"


def unknown_option(key: str, known: Iterable[str]) -> str:
    """The refusal of an unknown query option, naming it (with a suggestion when one is
    close) unless it may be a secret (`_nameable`)."""
    names = ", ".join(known)
    if _nameable(key, known):
        return f"unknown option '{sanitize(key, 40)}'{did_you_mean(key, known)}; known: {names}"
    return f"an unknown option (its name is not shown: it may be a secret); known: {names}"


def stray_at(parts: SplitResult) -> bool:
    """An `@` past the host part, other than in a queue or worker name (`w@host`): the
    sign of a user part cut short by an unencoded `/`, `?` or `#` in its password."""
    if "@" in parts.path or "@" in parts.fragment:
        return True
    for pair in parts.query.split("&"):
        key, _, value = pair.partition("=")
        if "@" in pair and not (
            unquote_plus(key) in NAMED_OPTIONS and NAME.fullmatch(unquote_plus(value))
        ):
            return True
    return False


__all__ = [
    "NAME",
    "REDIS_OPTION_NAMES",
    "TLS_OPTION_NAMES",
    "known_options",
    "redact_url",
    "shown_key",
    "stray_at",
    "unknown_option",
]
