"""What a real redis-server runs, as MONITOR shows it: a script's own commands
follow its EVALSHA line, tagged `[0 lua]`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def monitor(port: int) -> AsyncIterator[list[bytes]]:
    """Every command Redis runs meanwhile (MONITOR), as raw lines, filled in the
    background; scripts' own commands are tagged `[0 lua]`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"MONITOR\r\n")
    await writer.drain()
    assert (await reader.readline()).startswith(b"+OK")
    lines: list[bytes] = []

    async def read() -> None:
        while line := await reader.readline():
            lines.append(line)

    task = asyncio.create_task(read())
    try:
        yield lines
    finally:
        await asyncio.sleep(0.2)  # let the last lines arrive
        task.cancel()
        writer.close()


def script_calls(lines: list[bytes]) -> list[tuple[bytes, list[bytes]]]:
    """Each script run in `lines`: its EVALSHA line and the commands it ran, by name."""
    calls: list[tuple[bytes, list[bytes]]] = []
    for line in lines:
        if b" lua] " in line:
            if calls:
                calls[-1][1].append(line.split(b" lua] ", 1)[1].split(b'"')[1].upper())
        elif b'"EVALSHA"' in line.upper():
            calls.append((line, []))
    return calls
