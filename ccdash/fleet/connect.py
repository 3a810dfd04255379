"""A plain Redis client for the fleet's side channels (views, commands)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccdash.brokers import redact_url
from ccdash.brokers.redis import OPTIONS
from ccdash.brokers.redis.keys import Keys
from ccdash.brokers.redis.link import split_options


class FleetConnectError(Exception):
    """Redis could not be reached; the message names the (redacted) URL."""


async def connect(url: str, *, socket_timeout: float = 5.0) -> tuple[Any, Keys]:
    """A connected client and the key layout of the queue `url` names."""
    clean, opts = split_options(url, OPTIONS)
    client = Redis.from_url(
        clean, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout, protocol=2
    )
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise FleetConnectError(
            f"cannot reach Redis at {redact_url(url)}: {type(exc).__name__}"
        ) from None
    return client, Keys(opts.get("queue") or "default")
