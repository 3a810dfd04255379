"""Brokers: where messages live. `open_broker(url, ...)` picks one from a URL.

  memory                              the embedded memory broker (default)
  sqlite:///path/to/file.db           a durable single-file store
  redis://[user:pass@]host:port/db    Redis Streams consumer groups (rediss:// for TLS)
"""

from __future__ import annotations

from typing import TypeGuard
from urllib.parse import urlsplit, urlunsplit

from ccdash.brokers.base import Broker, BrokerError, QueueConfig
from ccdash.clock import Clock

SCHEMES = ("memory", "sqlite", "redis", "rediss")
REDIS_SCHEMES = ("redis", "rediss")  # a queue shared by worker processes (a fleet)


class BrokerURLError(BrokerError, ValueError):
    """A broker URL that cannot be used; the message says why (credentials redacted)."""


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to print or log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:***@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_url(url: str) -> str:
    """Return the URL's scheme if it is one we know; BrokerURLError otherwise."""
    if url == "memory":
        return "memory"
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:
        raise BrokerURLError(f"bad broker URL {redact_url(url)!r}: {exc}") from None
    if scheme not in SCHEMES:
        raise BrokerURLError(
            f"unknown broker {redact_url(url)!r}; use memory, sqlite:///FILE.db, "
            "redis://HOST:PORT/DB or rediss://..."
        )
    return scheme


def is_redis_url(url: object) -> TypeGuard[str]:
    """Is this a Redis broker URL (a queue that other processes share)?"""
    return isinstance(url, str) and "://" in url and url.split("://", 1)[0] in REDIS_SCHEMES


def open_broker(
    url: str, config: QueueConfig, *, clock: Clock | None = None, read_ahead: int = 128
) -> Broker:
    """Make the broker a URL names (not yet connected: the engine starts it).
    `read_ahead`: how many messages a remote broker fetches ahead (unless the URL says)."""
    scheme = check_url(url)
    if scheme == "memory":
        from ccdash.brokers.memory import MemoryBroker

        return MemoryBroker(config, clock=clock)
    if scheme == "sqlite":
        from ccdash.brokers.sqlite import SqliteBroker

        return SqliteBroker.from_url(url, config, clock=clock)
    from ccdash.brokers.redis import RedisBroker

    return RedisBroker.from_url(url, config, clock=clock, default_fetch=read_ahead)


__all__ = ["Broker", "BrokerURLError", "check_url", "is_redis_url", "open_broker", "redact_url"]
