"""A worker's presence record written by someone else (another version, a foreign
client) is one unreadable worker in the fleet view, never a failed read of the whole
fleet: numbers no ccdash writes (Infinity, NaN, 1e999, hundreds of digits) included."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from support.redis_fixtures import RedisServer

from ccdash.brokers.redis.keys import Keys
from ccdash.fleet import FleetView

pytestmark = pytest.mark.asyncio

GOOD = {
    "state": "running",
    "host": "h",
    "pid": 1,
    "consumers": [{"id": "c1", "state": "idle", "in_flight": 0, "processed": 3, "failed": 0}],
    "lease_list": [{"message_id": "m1", "consumer": "c1", "attempt": 1, "expires_in": 5.0}],
}

FOREIGN = {
    "pid-infinity": '{"pid": Infinity}',
    "pid-1e999": '{"pid": 1e999}',
    "in-flight-1e400": '{"consumers": [{"id": "c1", "in_flight": 1e400}]}',
    "beat-nan": '{"beat": NaN}',
    "beat-minus-infinity": '{"beat": -Infinity}',
    "beat-400-digits": '{"beat": ' + "9" * 400 + "}",
    "expires-nan": '{"lease_list": [{"message_id": "m", "expires_in": NaN}]}',
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
async def test_a_foreign_presence_record_spoils_only_its_own_worker(
    case: str, redis_server: RedisServer, redis_url: str
) -> None:
    """The good worker beside it is read whole; the foreign one is shown unreadable."""
    keys = Keys(parse_qs(urlsplit(redis_url).query)["queue"][0])
    redis_server.command("ZADD", keys.workers, "1", "good", "2", "foreign")
    redis_server.command("SET", keys.presence("good"), json.dumps(GOOD))
    redis_server.command("SET", keys.presence("foreign"), FOREIGN[case])
    async with FleetView(redis_url) as fleet:
        snap = await fleet.snapshot()
    good = snap.worker("good")
    foreign = snap.worker("foreign")
    assert good is not None and foreign is not None
    assert [c.id for c in good.consumers] == ["c1"] and good.leases[0].expires_in == 5.0
    assert foreign.alive and foreign.state == "unreadable"


@pytest.mark.parametrize(
    "pid", ["Infinity", "1e999", "NaN", "9223372036854775807", "-1"], ids=lambda p: f"pid={p}"
)
async def test_a_foreign_record_under_our_name_is_waited_out_not_raised(
    pid: str, redis_url: str, redis_server: RedisServer
) -> None:
    """A worker starting under a name whose heartbeat record (this host's name in it)
    holds a pid no process has: the record is watched until it lapses and taken over,
    not an OverflowError out of the worker's start (a traceback, exit 1)."""
    import socket

    from ccdash.brokers.base import QueueConfig
    from ccdash.brokers.redis import RedisBroker

    ttl = 0.5
    broker = RedisBroker.from_url(f"{redis_url}&ttl={ttl}&worker=w1", QueueConfig())
    record = f'{{"host": {json.dumps(socket.gethostname())}, "pid": {pid}, "beat": 0}}'
    redis_server.command("SET", broker.keys.presence("w1"), record, "PX", str(int(ttl * 1000)))
    await broker.open()
    try:
        await asyncio.wait_for(broker.presence.register(), 10)
        assert broker.presence.registered
    finally:
        await broker.close()
