"""Waiting for a command's answer never outlasts the client's socket timeout: the
audit stream is read in blocking slices shorter than it, so no answer is a
"timeout" result, not a Redis read timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.polling import until

from ccdash.fleet.connect import connect
from ccdash.fleet.control import send_command, wait_for_audit

SECRET = b"test-secret-0123456789"


async def test_no_answer_is_a_timeout_result_not_a_socket_timeout(redis_url: str) -> None:
    """A wait longer than the socket timeout, no worker answering: the old code blocked
    on XREAD for the whole wait (3 s on a 2 s socket timeout) and raised the client's
    TimeoutError, as a loaded machine did when a worker answered late."""
    client, keys = await connect(redis_url, socket_timeout=2.0)
    try:
        res = await wait_for_audit(client, keys, "n0", "w1", "kill", b"0-0", 3.0)
    finally:
        await client.aclose()
    assert (res.status, res.worker, res.action) == ("timeout", "w1", "kill")


async def test_a_command_sent_once_the_worker_is_seen_is_answered(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command sent the moment the fleet sees a starting worker (its presence just
    registered) is read and answered. The old worker registered its presence before its
    control listener noted where the command streams ended, so a command sent between
    the two was behind that mark and never read: on a loaded machine the signed-kill
    fleet test's first command got 'no answer within 30s'."""
    from ccdash.brokers.redis.presence import Presence
    from ccdash.fleet.runtime import WorkerOptions, WorkerRuntime

    async def handler(d: Any) -> None:
        return None

    opts = WorkerOptions(redis_url, handler=handler, name="w1", secret=SECRET, concurrency=2)
    runtime = WorkerRuntime(opts)
    register = Presence.register
    sent: list[str] = []

    async def register_then_command(self: Presence) -> None:
        await register(self)  # the fleet sees the worker from here on
        if not sent:
            res = await send_command(redis_url, SECRET, "w1", "scale", wait=None, n=1)
            sent.append(res.nonce)

    monkeypatch.setattr(Presence, "register", register_then_command)
    running = asyncio.ensure_future(runtime.run())
    try:
        await until(lambda: bool(sent) or running.done(), 20, "the worker registered")
        client, keys = await connect(redis_url)
        try:
            res = await wait_for_audit(client, keys, sent[0], "w1", "scale", b"0-0", 20.0)
        finally:
            await client.aclose()
    finally:
        runtime.request_stop("test over")
        assert await asyncio.wait_for(running, 30) == 0
    assert (res.status, res.detail) == ("accepted", "concurrency 1"), res
