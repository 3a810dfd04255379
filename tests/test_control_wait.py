"""Waiting for a command's answer never outlasts the client's socket timeout: the
audit stream is read in blocking slices shorter than it, so no answer is a
"timeout" result, not a Redis read timeout."""

from __future__ import annotations

from ccdash.fleet.connect import connect
from ccdash.fleet.control import wait_for_audit


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
