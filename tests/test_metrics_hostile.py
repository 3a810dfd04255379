"""The /metrics endpoint under bad requests (issue #12): an over-long request line, too
many or too long headers, garbage, a method other than GET. Each gets its status (400,
405 or 431), no traceback reaches the output, and the endpoint keeps serving."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ccdash import Engine, EngineConfig
from ccdash.ops.prometheus import MetricsServer

BAD_REQUESTS = {
    "request-line-70KiB": (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", "431"),
    "header-line-70KiB": (b"GET /metrics HTTP/1.1\r\nX: " + b"b" * 70_000 + b"\r\n\r\n", "431"),
    "ten-thousand-headers": (
        b"GET /metrics HTTP/1.1\r\n" + b"X-A: 1\r\n" * 10_000 + b"\r\n",
        "431",
    ),
    "garbage": (b"\x00\xff\x1b]52;c;eA==\x07\r\n\r\n", "400"),
    "one-word": (b"GET\r\n\r\n", "400"),
    "not-http": (b"GET /metrics SPDY/9\r\n\r\n", "400"),
    "post": (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "405"),
}


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
    except ConnectionError:  # the server may answer and close before reading it all
        pass
    raw = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    return raw


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
async def test_a_bad_request_gets_its_status_and_the_endpoint_keeps_serving(
    case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One bad request: its 4xx status line, no traceback or loop error, then a good
    GET /metrics still answers 200."""
    data, status = BAD_REQUESTS[case]
    errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    async with Engine(EngineConfig(consumers=0, min_consumers=0)) as engine:
        server = MetricsServer(engine, port=0)
        await server.start()
        try:
            raw = await _exchange(server.port, data)
            good = await _exchange(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        finally:
            await server.stop()
    assert raw.split(b"\r\n", 1)[0].startswith(b"HTTP/1.1 " + status.encode()), raw[:200]
    assert good.startswith(b"HTTP/1.1 200 OK") and b"ccdash_queue_depth" in good
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and not errors, (err, errors)
