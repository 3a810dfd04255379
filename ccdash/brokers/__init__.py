"""Brokers: where messages live. `open_broker(url, ...)` picks one from a URL.

memory                              the embedded memory broker (default)
sqlite:///path/to/file.db           a durable single-file store
redis://[user:pass@]host:port/db    Redis Streams consumer groups (rediss:// for TLS)
"""

from __future__ import annotations

from typing import TypeGuard

from ccdash.brokers.base import Broker, QueueConfig
from ccdash.brokers.urls import BrokerURLError, check_url, redact_url
from ccdash.clock import Clock

REDIS_SCHEMES = ("redis", "rediss")  # a queue shared by worker processes (a fleet)


def is_redis_url(url: object) -> TypeGuard[str]:
    """Is this a Redis broker URL (a queue that other processes share)?"""
    return isinstance(url, str) and "://" in url and url.split("://", 1)[0] in REDIS_SCHEMES


def is_shared_url(url: object) -> TypeGuard[str]:
    """Can other processes share this queue (Redis, or a SQLite file several open)?"""
    return is_redis_url(url) or (isinstance(url, str) and url.startswith("sqlite:"))


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


__all__ = [
    "Broker",
    "BrokerURLError",
    "check_url",
    "is_redis_url",
    "is_shared_url",
    "open_broker",
    "redact_url",
]
