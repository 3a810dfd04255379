"""The dashboard tests' helpers: a seeded, fake-clocked dashboard (over a small
workload, `make_app`, or the default scenario, `make_scenario_app`) and the ways to
drive and read it (`running`, `advance`, `quit_app`, `palette_searched`, `screen_text`,
`log_text`, `rows`).

`FakeWorkload` has the shape of `ccdash.scenario.Workload` (run, inject_burst,
inject_poison, trigger_drill, drill_results, available_drills) with fully
deterministic load, so Pilot and snapshot tests need no real time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock
from ccdash.scenario import Workload, load_scenario
from ccdash.tui.app import DashboardApp


@dataclass
class DrillRecord:
    """What the dashboard reads from a drill result."""

    action: str
    target: str
    at: float
    detected_after_s: float | None = None
    recovered_after_s: float | None = None
    verdict: str = "running"


class FakeWorkload:
    """Deterministic load: `rate` messages per fake second, handled in `latency` seconds."""

    def __init__(
        self, engine: Engine, clock: FakeClock, *, rate: float = 20.0, latency: float = 0.2
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.rate = rate
        self.latency = latency
        self.n = 0
        self.drill_results: list[DrillRecord] = []
        self.completed: dict[str, int] = {}
        self.fail_all = False  # every handler call fails (a downstream outage)
        self._stopped: asyncio.Future[None] | None = None

    async def handle(self, d: Delivery) -> None:
        """The handler: poison always fails, everything else takes `latency`."""
        if isinstance(d.body, bytes):
            raise ValueError("binary payloads are not accepted")
        if isinstance(d.body, dict) and d.body.get("poison"):
            raise ValueError(d.body.get("error") or f"poison message {d.body.get('n')}")
        if self.fail_all:
            raise ConnectionError("downstream unavailable")
        await self.clock.sleep(self.latency)
        self.completed[d.message_id] = self.completed.get(d.message_id, 0) + 1

    async def publish(self, body: dict[str, Any]) -> str:
        self.n += 1
        return await self.engine.publish({"n": self.n, **body})

    async def run(self, duration: float | None = None, on_event: Any = None) -> None:
        """Publish steadily on the fake clock until `stop`."""
        self._stopped = asyncio.get_running_loop().create_future()
        if self.rate <= 0:
            await self._stopped
            return
        while not self._stopped.done():
            await self.clock.sleep(1.0 / self.rate)
            await self.publish({"order": self.n})

    def stop(self, reason: str = "stopped") -> None:
        """End `run`."""
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    async def inject_burst(self, n: int) -> None:
        for _ in range(n):
            await self.publish({"burst": True})

    async def inject_poison(self, n: int = 1) -> None:
        for _ in range(n):
            await self.publish({"poison": True})

    def available_drills(self) -> list[str]:
        return ["kill", "hang", "slow", "poison", "burst"]

    async def trigger_drill(self, action: str, target: str = "busiest", **params: Any) -> None:
        cid = target
        if target == "busiest":
            cid = max(self.engine.consumer_ids(), key=lambda c: self.engine.consumers[c].held)
        record = DrillRecord(action, cid, self.clock.now())
        self.drill_results.append(record)
        if action == "kill":
            await self.engine.kill_consumer(cid)
            record.detected_after_s = 0.0
            record.recovered_after_s = 0.0
        record.verdict = "pass"


def make_app(
    *,
    consumers: int = 3,
    rate: float = 0.0,
    latency: float = 0.2,
    seed: int = 7,
    size_live: bool = False,
    broker: Any = None,
    **app_kw: Any,
) -> DashboardApp:
    """A dashboard over a seeded engine on a fake clock, its own timers off."""
    clock = FakeClock()
    cfg = EngineConfig(
        consumers=consumers,
        max_consumers=8,
        heartbeat_interval=0.5,
        heartbeat_timeout=1.5,
        visibility_timeout=10.0,
        max_attempts=3,
        backoff_base=0.05,
        backoff_max=0.2,
        shutdown_grace=1.0,
        seed=seed,
    )
    holder: dict[str, FakeWorkload] = {}

    async def handler(d: Delivery) -> None:
        await holder["w"].handle(d)

    engine = Engine(cfg, handler=handler, clock=clock, broker=broker)
    workload = holder["w"] = FakeWorkload(engine, clock, rate=rate, latency=latency)
    app_kw.setdefault("live", size_live)
    app_kw.setdefault("title", "test")
    return DashboardApp(engine, workload, clock=clock, **app_kw)


def make_scenario_app() -> DashboardApp:
    """A dashboard over the default scenario's engine and workload, seeded, fake-clocked."""
    clock = FakeClock()
    scenario = load_scenario(None)
    engine = scenario.make_engine(clock=clock, seed=3)
    workload = Workload(scenario, engine, seed=3)
    return DashboardApp(
        engine, workload, clock=clock, live=False, burst_size=50, title=scenario.name
    )


@contextlib.asynccontextmanager
async def running(app: DashboardApp, size: tuple[int, int] = (160, 48)) -> AsyncIterator[Any]:
    """`app.run_test`, returning once the engine runs and the panes show it."""
    async with app.run_test(size=size) as pilot:
        await app.engine_ready.wait()
        await pilot.pause()
        yield pilot


async def advance(app: DashboardApp, pilot: Any, seconds: float, step: float = 0.05) -> None:
    """Move the fake clock on, then refresh the panes and let the screen catch up."""
    await app.engine_ready.wait()
    await app.clock.advance(seconds) if step >= seconds else await _steps(app, seconds, step)
    app.refresh_now()
    await pilot.pause()


async def _steps(app: DashboardApp, seconds: float, step: float) -> None:
    t = 0.0
    while t < seconds - 1e-9:
        await app.clock.advance(min(step, seconds - t))
        t += step


async def quit_app(app: DashboardApp, pilot: Any) -> None:
    """Press q and drive the fake clock until the engine has stopped and the app exited."""
    await pilot.press("q")
    loop = asyncio.get_running_loop()
    end = loop.time() + 30.0  # real seconds: a durable broker closes on its own thread
    moved = 0.0
    while not (app.engine_worker is not None and app.engine_worker.is_finished):
        if loop.time() > end:
            break
        if moved < 20.0:  # the grace period and its deadlines run on the fake clock
            await app.clock.advance(0.05)
            moved += 0.05
        else:  # what is left is real work (a writer thread committing, a file closing)
            await asyncio.sleep(0.02)
    await pilot.pause()


async def palette_searched(app: DashboardApp, pilot: Any, typed: str, within: float = 20.0) -> Any:
    """The command palette once its search for `typed` has finished (it runs on real
    time in a worker, so a fixed pause can end before it on a loaded machine); polled.
    Returns the palette."""
    from textual.command import CommandInput, CommandPalette
    from textual.worker import WorkerState

    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while True:
        await pilot.pause()
        palette = app.screen
        if isinstance(palette, CommandPalette):
            searching = any(
                w.node is palette
                and w.group == CommandPalette._GATHER_COMMANDS_GROUP
                and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                for w in app.workers
            )
            value = palette.query_one(CommandInput).value
            if value == typed and palette.has_class("-ready") and not searching:
                return palette
        assert loop.time() < end, f"the palette's search for {typed!r} did not finish"
        await asyncio.sleep(0.02)


def screen_text(app: DashboardApp) -> str:
    """The screen as plain text (what a person would read)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()


def log_text(app: DashboardApp) -> str:
    """Everything the log pane holds, as text."""
    from ccdash.tui.log_pane import LogPane

    return app.query_one(LogPane).all_text()


def rows(table: Any) -> dict[str, list[str]]:
    """A table's rows by key, top to bottom, each cell as plain text."""
    return {key: table.row_text(key) for key in table.row_keys()}
