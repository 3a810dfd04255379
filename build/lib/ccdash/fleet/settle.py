"""Where a batch of message ids is now, on a shared Redis queue named by its URL.

The loss checker of a run that shares its queue with other workers needs this:
those workers run their own handlers, so the run's own records never see the
completions they make. The scan itself is the broker package's (`brokers.redis.locate`).
"""

from __future__ import annotations

from collections.abc import Iterable

from ccdash.brokers.redis.locate import Whereabouts, locate_ids
from ccdash.fleet.connect import connect


async def locate(url: str, ids: Iterable[str]) -> Whereabouts:
    """Which of `ids` the queue `url` names still holds."""
    client, keys = await connect(url)
    try:
        return await locate_ids(client, keys, ids)
    finally:
        await client.aclose()


__all__ = ["Whereabouts", "locate"]
