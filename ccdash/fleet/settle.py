"""Where a batch of message ids is now, on a shared queue (Redis, or a SQLite file
several processes open) named by its URL.

The loss checker of a run that shares its queue with other workers needs this:
those workers run their own handlers, so the run's own records never see the
completions they make. The scans themselves are the broker packages'
(`brokers.redis.locate`, `brokers.sqlite.locate`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ccdash.brokers.redis.locate import Whereabouts, locate_ids
from ccdash.fleet.connect import connect


async def locate(url: str, ids: Iterable[str]) -> Whereabouts:
    """Which of `ids` the queue `url` names (Redis, or a SQLite file) still holds."""
    if url.startswith("sqlite:"):
        from ccdash.brokers.sqlite.locate import locate_in_file
        from ccdash.brokers.sqlite.schema import parse_url

        found = await asyncio.to_thread(locate_in_file, parse_url(url).path, list(ids))
        return Whereabouts(*found)
    client, keys = await connect(url)
    try:
        return await locate_ids(client, keys, ids)
    finally:
        await client.aclose()


__all__ = ["Whereabouts", "locate"]
