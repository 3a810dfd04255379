"""The control channel refuses replays (issue #12): a recorded command re-sent to a
worker that joined after it was issued, or re-sent after the Redis nonce keys were
deleted, is refused and audited, on real `ccdash worker` processes and a real Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fleet import SECRET, Fleet, alive_workers, fleet_on
from support.polling import until
from support.redis_fixtures import RedisServer

from ccdash.fleet import send_command
from ccdash.fleet.connect import connect
from ccdash.fleet.control import redis_time, send_raw
from ccdash.fleet.listener import JOIN_SLACK

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(redis_server: RedisServer, tmp_path: Path) -> Iterator[Fleet]:
    """Worker processes on a fresh queue of the session's Redis."""
    yield from fleet_on(redis_server, tmp_path, "replay")


async def _audit(url: str, nonce: str, worker: str) -> tuple[str, str]:
    """(status, detail) of `worker`'s newest audit record of `nonce`."""
    client, keys = await connect(url)
    try:
        for _eid, f in await client.xrevrange(keys.audit):
            if f.get(b"nonce", b"").decode() == nonce and f[b"worker"].decode() == worker:
                return f[b"status"].decode(), f[b"detail"].decode()
    finally:
        await client.aclose()
    return "", ""


async def _last_command(url: str, stream_of: str) -> dict[str, bytes]:
    client, keys = await connect(url)
    try:
        [(_, fields)] = await client.xrevrange(keys.control(stream_of), count=1)
        return {k.decode(): v for k, v in fields.items()}  # XADD writes str fields as these bytes
    finally:
        await client.aclose()


async def test_a_command_replayed_to_a_worker_that_joined_later_is_refused(fleet: Fleet) -> None:
    """A signed broadcast accepted by r1, replayed within its 30 s window after r2
    joined: r2 refuses it (issued before it joined), r1 refuses it (seen)."""
    fleet.spawn("r1")
    await until(lambda: _listening(fleet, "r1"), 20, "r1 listening")
    res = await send_command(fleet.url, SECRET, "*", "scale", n=2)
    assert res.status == "accepted", res
    recorded = await _last_command(fleet.url, "*")
    issued = float(json.loads(recorded["c"])["ts"])

    async def past_the_slack() -> bool:  # r2 joins clearly after the command was issued
        client, _ = await connect(fleet.url)
        try:
            return await redis_time(client) > issued + JOIN_SLACK
        finally:
            await client.aclose()

    await until(past_the_slack, 10, "Redis' clock past the join slack")
    fleet.spawn("r2")
    await until(lambda: _alive(fleet, {"r1", "r2"}), 20, "r2 up")
    await until(lambda: _listening(fleet, "r2"), 20, "r2 listening")
    nonce = json.loads(recorded["c"])["nonce"]
    await send_raw(fleet.url, "*", recorded)

    async def refused_by_both() -> bool:
        statuses = [(await _audit(fleet.url, nonce, w))[0] for w in ("r1", "r2")]
        return statuses == ["refused", "refused"]

    await until(refused_by_both, 10, "the replay refused by r1 and r2")
    assert await _audit(fleet.url, nonce, "r2") == ("refused", "issued before this worker joined")
    assert await _audit(fleet.url, nonce, "r1") == ("refused", "replayed")
    assert "concurrency 2" not in fleet.log("r2")
    fleet.stop_all()


async def test_a_replay_is_refused_even_after_the_nonce_keys_are_deleted(fleet: Fleet) -> None:
    """Someone with Redis write access deletes the nonce keys and replays a command:
    the worker remembers the nonce itself and refuses it."""
    fleet.spawn("m1")
    await until(lambda: _listening(fleet, "m1"), 20, "m1 listening")
    res = await send_command(fleet.url, SECRET, "m1", "scale", n=3)
    assert res.status == "accepted", res
    recorded = await _last_command(fleet.url, "m1")
    client, keys = await connect(fleet.url)
    try:
        nonce_keys = [k async for k in client.scan_iter(match=f"{keys.prefix}*nonce*")]
        assert nonce_keys, "the nonce was recorded in Redis"
        await client.delete(*nonce_keys)
    finally:
        await client.aclose()
    await send_raw(fleet.url, "m1", recorded)
    nonce = json.loads(recorded["c"])["nonce"]

    async def refused() -> bool:
        return (await _audit(fleet.url, nonce, "m1"))[0] == "refused"

    await until(refused, 10, "the replay refused")
    assert await _audit(fleet.url, nonce, "m1") == ("refused", "replayed")
    fleet.stop_all()


async def _alive(fleet: Fleet, names: set[str]) -> bool:
    return names <= await alive_workers(fleet.url)


def _listening(fleet: Fleet, name: str) -> bool:
    return "consumers on" in fleet.log(name)
