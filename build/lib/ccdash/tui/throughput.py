"""What the dashboard costs: acked messages per second with and without it, same scenario.

    python -m ccdash.tui.throughput [--seconds 10] [--scenario demo/default.toml]

Runs the scenario (default: a saturating one, so the engine is CPU-bound and any
time the UI takes shows) twice in this process: headless (engine + workload
only) and under the dashboard (Textual's headless driver at 160x48: every
refresh is laid out and rendered, only the terminal write is skipped). Prints
both rates and their ratio. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from typing import Any

SATURATING = """
[scenario]
name = "saturate"
description = "more load than the pool can take: throughput is CPU-bound"
duration = 60
seed = 1

[engine]
consumers = 8
max_consumers = 16
prefetch = 4
capacity = 5000
visibility_timeout = 30.0

[load]
shape = "steady"
rate = 50000
arrivals = "even"

[handler]
latency = "constant"
ms = 0
"""


def _scenario(path: str | None) -> Any:
    from ccdash.scenario import load_scenario, parse_scenario

    return load_scenario(path) if path else parse_scenario(SATURATING, file="<saturate>")


def _now(engine: Any) -> tuple[int, float, float]:
    """Acked so far, wall time, this process's CPU time."""
    return engine.snapshot(max_leases=0, max_dead=0).acked, time.perf_counter(), time.process_time()


async def _headless(scenario: Any, seconds: float, seed: int) -> tuple[float, float]:
    from ccdash.scenario import Workload

    engine = scenario.make_engine(seed=seed)
    workload = Workload(scenario, engine, seed=seed)
    async with engine:
        run = asyncio.create_task(workload.run(duration=math.inf))
        await asyncio.sleep(1.0)  # warm up
        a0, t0, c0 = _now(engine)
        await asyncio.sleep(seconds)
        a1, t1, c1 = _now(engine)
        workload.stop("measured")
        await run
    return float(a1 - a0) / (t1 - t0), float(a1 - a0) / (c1 - c0)


async def _with_tui(scenario: Any, seconds: float, seed: int) -> tuple[float, float]:
    from ccdash.scenario import Workload
    from ccdash.tui.app import DashboardApp

    engine = scenario.make_engine(seed=seed)
    workload = Workload(scenario, engine, seed=seed)
    app = DashboardApp(engine, workload, title=scenario.name)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.engine_ready.wait()
        await asyncio.sleep(1.0)
        a0, t0, c0 = _now(engine)
        await asyncio.sleep(seconds)
        a1, t1, c1 = _now(engine)
        await pilot.press("q")
        assert app.engine_worker is not None
        await app.engine_worker.wait()
    return float(a1 - a0) / (t1 - t0), float(a1 - a0) / (c1 - c0)


def measure(
    scenario_path: str | None = None, seconds: float = 10.0, seed: int = 1, rounds: int = 1
) -> dict[str, float]:
    """Acked/s headless and with the TUI, alternating for `rounds`; medians and ratios.

    `ratio` compares wall-clock throughput; `cpu_ratio` compares acks per CPU
    second of this process, which a busy neighbour on the machine does not skew.
    """
    scenario = _scenario(scenario_path)
    runs: dict[str, list[tuple[float, float]]] = {"headless": [], "tui": []}
    for _ in range(rounds):  # alternate, so a noisy neighbour hurts both alike
        runs["headless"].append(asyncio.run(_headless(scenario, seconds, seed)))
        runs["tui"].append(asyncio.run(_with_tui(scenario, seconds, seed)))
    h = statistics.median(r[0] for r in runs["headless"])
    t = statistics.median(r[0] for r in runs["tui"])
    hc = statistics.median(r[1] for r in runs["headless"])
    tc = statistics.median(r[1] for r in runs["tui"])
    return {
        "headless_per_s": h,
        "tui_per_s": t,
        "ratio": t / h,
        "headless_per_cpu_s": hc,
        "tui_per_cpu_s": tc,
        "cpu_ratio": tc / hc,
    }


def main() -> None:
    """Command line: print the two rates and the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", help="a scenario file (default: a saturating one)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    r = measure(args.scenario, args.seconds, rounds=args.rounds)
    print(
        f"headless {r['headless_per_s']:,.0f} acked/s; with the dashboard "
        f"{r['tui_per_s']:,.0f} acked/s; ratio {r['ratio']:.3f}\n"
        f"per CPU second: headless {r['headless_per_cpu_s']:,.0f}, with the dashboard "
        f"{r['tui_per_cpu_s']:,.0f}; ratio {r['cpu_ratio']:.3f}"
    )


if __name__ == "__main__":
    main()
