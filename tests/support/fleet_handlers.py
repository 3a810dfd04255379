"""Handlers the fleet tests run inside `ccdash worker` processes.

Each completion is one line `message_id attempt` in a file per process under
$CCDASH_TEST_OUT, written (line-buffered) before the handler returns: a message
the fleet acked has always been recorded, even if its worker is SIGKILLed next.
"""

from __future__ import annotations

import asyncio
import os
from typing import IO, Any

_out: IO[str] | None = None


async def record(d: Any) -> None:
    """Take a little time, then record the completion."""
    global _out
    await asyncio.sleep(float(os.environ.get("CCDASH_TEST_DELAY", "0.02")))
    if _out is None:
        path = os.path.join(os.environ["CCDASH_TEST_OUT"], f"{os.getpid()}.log")
        _out = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115, ASYNC230
    _out.write(f"{d.message_id} {d.attempt}\n")


async def stubborn(d: Any) -> None:
    """Ignore cancellation, as a handler catching every exception does; ends in 120 s.
    Under $CCDASH_TEST_OUT it leaves a file per message it started."""
    out = os.environ.get("CCDASH_TEST_OUT")
    if out:
        with open(os.path.join(out, f"started-{d.message_id}"), "w"):  # noqa: ASYNC230
            pass
    loop = asyncio.get_running_loop()
    end = loop.time() + 120
    while loop.time() < end:
        try:
            await asyncio.sleep(end - loop.time())
        except asyncio.CancelledError:
            continue


async def interrupts_once(d: Any) -> None:
    """`record`, except that the first delivery of every third message raises
    KeyboardInterrupt (a handler's own, not a Ctrl-C)."""
    if d.attempt == 1 and d.body["n"] % 3 == 0:
        raise KeyboardInterrupt("pressed by the handler")
    await record(d)


async def env_probe(d: Any) -> None:
    """`record`, after writing to $CCDASH_TEST_OUT/env-<pid> the environment a process
    this handler starts inherits (the output of `env`)."""
    child = await asyncio.create_subprocess_exec("env", stdout=asyncio.subprocess.PIPE)
    out, _ = await child.communicate()
    path = os.path.join(os.environ["CCDASH_TEST_OUT"], f"env-{os.getpid()}")
    with open(path, "wb") as f:  # noqa: ASYNC230
        f.write(out)
    await record(d)


async def sleeper(d: Any) -> None:
    """Leave a file `started-<message id>` under $CCDASH_TEST_OUT, then sleep 120 s
    (cancellable): a handler that is in progress when the worker is stopped."""
    path = os.path.join(os.environ["CCDASH_TEST_OUT"], f"started-{d.message_id}")
    with open(path, "w"):  # noqa: ASYNC230
        pass
    await asyncio.sleep(120)
