"""The Redis Streams broker: consumer groups shared by worker processes on many machines.

`broker` is the front (`RedisBroker`); its parts — publishing, the write path
(`flusher`), the read path (`reader`), presence and reaping (`presence`), leases, views
and the Lua `scripts` with their key layout (`keys`) — work through the narrow
`core.RedisCore` (publishing, leases and state are mixins of the broker).
"""

from ccdash.brokers.redis.broker import OPTIONS, RedisBroker

__all__ = ["OPTIONS", "RedisBroker"]
