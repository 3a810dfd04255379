"""The Redis read path when a round trip fails between taking entries and buffering
them, on a real redis-server: an entry Redis handed to this worker (pending for it)
must reach a consumer, not wait for its lease to run out. Faults are put in at the
exact round trip; every wait is bounded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from support.redis_fixtures import RedisServer, lease

from ccdash.brokers.redis.link import LinkDown

Make = Callable[..., Any]


async def test_entries_a_parked_read_took_are_kept_when_the_wake_ack_fails(
    redis_broker: Make, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read parked in Redis returns a new entry and a wake entry; the round trip that
    acks the wake entry breaks. The new entry is this worker's in Redis already: it is
    buffered and leased at once (it was dropped, and came back only when its 30 s
    lease ran out, an attempt used up)."""
    b = await redis_broker(visibility_timeout=30.0)
    await b.presence.register()  # as the reader does before its first read
    await b.publish(b"m1")
    redis_server.command("XADD", b.keys.wake, "*", "w", "1")  # a message came back
    reader = b.reader
    reader.prios, reader.next_due = [b"0"], -1
    real = reader.link.execute

    async def drop_on_wake_ack(commands: Sequence[Any]) -> list[Any]:
        if commands[0][0] == "XACK":
            raise LinkDown("connection reset")
        replies: list[Any] = await real(commands)
        return replies

    monkeypatch.setattr(reader.link, "execute", drop_on_wake_ack)
    with pytest.raises(LinkDown):
        await reader.block()
    monkeypatch.setattr(reader.link, "execute", real)
    d = await lease(b, within=5.0)
    assert (d.body, d.attempt) == (b"m1", 1)


async def test_entries_a_native_fetch_took_are_kept_when_reloading_the_scripts_breaks(
    redis_server_factory: Any, redis_broker: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch's script is refused NOSCRIPT (Redis forgot its scripts) while the native
    XREADGROUP beside it took an entry; the round trip that loads the scripts again
    breaks. The entry is this worker's in Redis already: it is buffered and leased at
    once (it was dropped with the round trip's replies and waited out its 30 s lease)."""
    server = redis_server_factory()
    b = await redis_broker(url=f"{server.url}?queue=noscript", visibility_timeout=30.0)
    await b.publish(b"m1")
    await b.presence.register()  # as the reader does before its first read
    server.command("SCRIPT", "FLUSH")
    reader = b.reader
    reader.prios, reader.floor = [b"0"], 0  # the native path
    real = reader.link._roundtrip

    async def drop_on_load(commands: Sequence[Any]) -> list[Any]:
        if commands[0][:2] == ("SCRIPT", "LOAD"):
            raise LinkDown("connection reset")
        replies: list[Any] = await real(commands)
        return replies

    monkeypatch.setattr(reader.link, "_roundtrip", drop_on_load)
    with pytest.raises(LinkDown):
        await reader.fetch()
    monkeypatch.setattr(reader.link, "_roundtrip", real)
    d = await lease(b, within=5.0)
    assert (d.body, d.attempt) == (b"m1", 1)
