"""`ccdash bench`'s two sides counted in CPU instructions instead of seconds.

Wall-clock ratios on a shared 2-core machine swing by half from one run to the
next; callgrind's instruction counts stay within about 1%, even with the other
core loaded. Each side runs in its own interpreter twice, with a small and
a large message count, and the difference is divided by the extra messages, so
start-up and imports cancel out.

    python benchmarks/bench_instructions.py [--messages 20000] [--prefetch 1 --prefetch 32]

Needs valgrind. Instructions are not time (the engine keeps every queued message
as an object, the floor one shared bytes object, so the engine also waits more on
memory): a ratio here is an upper bound on the wall-clock one.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys

from ccdash.bench import engine_rate, floor_rate

_BASE = 2000  # messages in the run whose count is subtracted


def _run_side(side: str, prefetch: int, messages: int) -> None:
    """One side, in this process (what callgrind counts)."""
    if side == "floor":
        asyncio.run(floor_rate(messages, 4))
    else:
        asyncio.run(engine_rate(messages, 4, prefetch))


def _count(side: str, prefetch: int, messages: int) -> int:
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--side",
        side,
        "--prefetch",
        str(prefetch),
        "--messages",
        str(messages),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    found = re.search(r"Collected : (\d+)", out)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out[-2000:]}")
    return int(found.group(1))


def per_message(side: str, prefetch: int, messages: int) -> float:
    """Instructions per message of one side."""
    return (_count(side, prefetch, _BASE + messages) - _count(side, prefetch, _BASE)) / messages


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--prefetch", type=int, action="append")
    p.add_argument("--side", choices=("floor", "engine"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side:  # the child valgrind runs
        _run_side(args.side, (args.prefetch or [1])[0], args.messages)
        return 0
    if shutil.which("valgrind") is None:
        print("bench_instructions: valgrind is not installed", file=sys.stderr)
        return 2
    floor = per_message("floor", 1, args.messages)
    print(f"floor (asyncio.Queue, 4 consumers): {floor:,.0f} instructions/message")
    for prefetch in args.prefetch or [1, 32]:
        engine = per_message("engine", prefetch, args.messages)
        print(
            f"engine prefetch={prefetch}: {engine:,.0f} instructions/message, "
            f"ratio {floor / engine:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
