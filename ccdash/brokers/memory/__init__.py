"""The embedded memory broker: the default, fastest, and gone when the process ends.

records  a message, a dedup entry, a priority level's ready messages
state    where messages are, and its upkeep: lease indexes, retries, expiry, timers
views    what operators see (stats, locate, leases, DLQ) and the DLQ actions
broker   `MemoryBroker`: the message path (publish, receive, ack, nack, release)
"""

from __future__ import annotations

from ccdash.brokers.memory.broker import MemoryBroker
from ccdash.brokers.types import REASON_CONSUMER_FAILED

__all__ = ["MemoryBroker", "REASON_CONSUMER_FAILED"]
