"""The narrow view of the Redis broker that its parts (reader, presence) work through.

The parts get this Protocol, not `RedisBroker`, so no part imports the broker that
owns it: the dependencies point one way (broker -> parts -> core).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ccdash.brokers.base import QueueConfig
    from ccdash.brokers.redis.extending import Extender
    from ccdash.brokers.redis.flusher import Flusher
    from ccdash.brokers.redis.keys import Keys
    from ccdash.brokers.redis.local import LocalBook
    from ccdash.clock import Clock


class PresenceState(Protocol):
    """What the reader needs of this worker's presence: register before the first read."""

    registered: bool

    async def register(self) -> None: ...


class ReaderState(Protocol):
    """What presence needs of the reader: fetch next (the level registry changed)."""

    def changed(self) -> None: ...


class RedisCore(Protocol):
    """The broker's state and hooks that its reader and presence use."""

    worker: str
    heartbeat_ttl: float
    vt: float
    fetch_size: int
    config: QueueConfig
    clock: Clock
    keys: Keys
    book: LocalBook
    flusher: Flusher
    extender: Extender
    presence_info: Callable[[], dict[str, Any]] | None

    @property
    def presence(self) -> PresenceState: ...

    @property
    def reader(self) -> ReaderState: ...

    def has_waiters(self) -> bool: ...

    def fail_waiters(self, exc: BaseException) -> None: ...

    def note_fetched(self, n: int) -> None: ...

    def fetched(self) -> None: ...

    def expiry_now(self, now: float) -> float: ...

    def on_lost_state(self, *, leases: bool = True) -> None: ...

    def bury_undecodable(self, level: bytes, eid: bytes, why: str) -> None: ...
