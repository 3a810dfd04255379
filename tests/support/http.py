"""A minimal HTTP client for the metrics endpoint tests (no client library needed)."""

from __future__ import annotations

import asyncio


async def http_get(port: int, path: str = "/metrics") -> tuple[str, str]:
    """A minimal GET on 127.0.0.1; returns (status line, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return head.splitlines()[0], body
