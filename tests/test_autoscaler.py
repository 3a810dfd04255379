"""Autoscaler on a fake clock: reactive scaling, stabilisation, bounds, no flapping,
and prediction earning its keep on a ramp."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock
from ccdash.engine.forecast import Holt

SERVICE = 0.1  # seconds per message: one consumer handles 10 msg/s


def scaler_cfg(**kw: object) -> EngineConfig:
    base: dict[str, object] = dict(
        consumers=2,
        min_consumers=1,
        max_consumers=40,
        autoscale=True,
        heartbeat_interval=0.5,
        heartbeat_timeout=2.0,
        visibility_timeout=30.0,
        scale_interval=1.0,
        scale_cooldown=2.0,
        scale_down_window=15.0,
        max_scale_step=4,
        target_utilisation=0.7,
        target_backlog_per_consumer=10.0,
        startup_delay=3.0,
        seed=5,
    )
    base.update(kw)
    return EngineConfig(**base)  # type: ignore[arg-type]


@dataclass
class Run:
    """What a simulated run saw, sampled every step."""

    sizes: list[tuple[float, int]]
    backlog_peak: int
    acked: int
    published: int


async def simulate(
    cfg: EngineConfig,
    rate: Callable[[float], float],
    seconds: float,
    step: float = 0.05,
    peak_after: float = 0.0,
) -> Run:
    """Publish at rate(t) msg/s for `seconds` of fake time; handlers take SERVICE each.
    The backlog peak counts from `peak_after` on."""
    clock = FakeClock()

    async def work(d: Delivery) -> None:
        await clock.sleep(SERVICE)

    sizes: list[tuple[float, int]] = []
    peak = 0
    owed = 0.0
    async with Engine(cfg, handler=work, clock=clock) as engine:
        start = clock.now()
        while (t := clock.now() - start) < seconds:
            owed += rate(t) * step
            while owed >= 1:
                await engine.publish(b"x")
                owed -= 1
            await clock.advance(step)
            snap = engine.snapshot()
            if t >= peak_after:
                peak = max(peak, snap.queue.depth)
            sizes.append((t, sum(1 for c in snap.consumers if c.state in ("idle", "processing"))))
        engine.set_autoscale(False)
        await clock.run_until(lambda: engine.broker.outstanding() == 0, limit=300)
        snap = engine.snapshot()
    return Run(sizes, peak, snap.acked, snap.published)


async def test_scales_up_on_backlog_within_one_interval() -> None:
    """A sudden backlog grows the pool at the next decision."""
    clock = FakeClock()

    async def work(d: Delivery) -> None:
        await clock.sleep(SERVICE)

    cfg = scaler_cfg(consumers=1, predictive=False)
    async with Engine(cfg, handler=work, clock=clock) as engine:
        await clock.advance(1.5)
        for _ in range(200):
            await engine.publish(b"x")
        await clock.advance(cfg.scale_interval + cfg.heartbeat_interval)
        assert len(engine.consumer_ids()) == 1 + cfg.max_scale_step
        assert engine.snapshot().scaling[-1].reason == "backlog"
        engine.set_autoscale(False)
        await clock.run_until(lambda: engine.broker.outstanding() == 0, limit=120)


async def test_no_scale_down_during_stabilisation_window() -> None:
    """After load stops, the pool holds its size for the stabilisation window, then shrinks."""
    cfg = scaler_cfg(consumers=1, predictive=False, scale_down_window=10.0)
    run = await simulate(cfg, lambda t: 60.0 if t < 8 else 0.0, seconds=30.0)
    load_end = 8.0
    held = [n for t, n in run.sizes if t < load_end + cfg.scale_down_window]
    assert all(b >= a for a, b in zip(held, held[1:], strict=False)), "shrank inside the window"
    peak = max(held)
    assert peak > 1
    assert run.sizes[-1][1] < peak  # after the window it does shrink


async def test_pool_stays_within_min_and_max() -> None:
    """Whatever the load, the pool never leaves [min_consumers, max_consumers]."""
    cfg = scaler_cfg(consumers=2, min_consumers=2, max_consumers=6, predictive=True)
    run = await simulate(cfg, lambda t: 300.0 if t < 6 else 0.0, seconds=25.0)
    counts = [n for _, n in run.sizes]
    assert max(counts) == 6 and min(counts) >= 2
    assert run.acked == run.published


async def test_noisy_steady_load_does_not_flap() -> None:
    """Under a steady load with +-20% noise: at most 2 direction changes per minute."""
    rng = random.Random(11)
    noise = {}

    def rate(t: float) -> float:
        second = int(t)
        if second not in noise:
            noise[second] = rng.uniform(0.8, 1.2)
        return 50.0 * noise[second]

    run = await simulate(scaler_cfg(consumers=4), rate, seconds=60.0)
    sizes = [n for _, n in run.sizes]
    moves = [b - a for a, b in zip(sizes, sizes[1:], strict=False) if b != a]
    changes = sum(1 for a, b in zip(moves, moves[1:], strict=False) if (a > 0) != (b > 0))
    assert changes <= 2, moves
    assert run.acked == run.published


def test_holt_forecast_extrapolates_a_ramp() -> None:
    """Holt's method follows a linear ramp and projects it ahead."""
    h = Holt()
    for i in range(30):
        h.update(10.0 + 5.0 * i)
    assert abs(h.forecast(0) - (10 + 5 * 29)) < 1.0
    assert abs(h.forecast(4) - (10 + 5 * 33)) < 2.0


def test_a_damped_trend_bounds_how_far_the_forecast_reaches() -> None:
    """phi < 1: however long the horizon, the trend adds at most trend x phi/(1-phi)."""
    h = Holt(phi=0.8)
    for i in range(30):
        h.update(10.0 + 5.0 * i)
    assert h.forecast(1000) <= h.level + h.trend * 0.8 / 0.2 + 1e-9
    assert h.forecast(1) > h.level  # it still leans the way the series goes


def black_friday(t: float) -> float:
    """20 msg/s, ramping to 10x (200 msg/s) between 20 s and 35 s, then holding."""
    if t < 20:
        return 20.0
    if t < 35:
        return 20.0 + 180.0 * (t - 20) / 15
    return 200.0


async def compare_black_friday() -> tuple[Run, Run, int]:
    """The ramp run reactive-only and reactive + predictive; returns both and the needed size."""
    needed = math.ceil(200 * SERVICE / 0.7)
    reactive = await simulate(
        scaler_cfg(consumers=3, predictive=False), black_friday, seconds=55.0, peak_after=15.0
    )
    predictive = await simulate(
        scaler_cfg(consumers=3, predictive=True), black_friday, seconds=55.0, peak_after=15.0
    )
    return reactive, predictive, needed


def time_to_size(run: Run, needed: int) -> float:
    """First time the live pool reached `needed` consumers."""
    return next((t for t, n in run.sizes if n >= needed), math.inf)


async def test_prediction_sizes_earlier_and_cuts_backlog_peak() -> None:
    """On the black-friday ramp, prediction reaches the needed size earlier and the
    backlog peak is at least 30% lower than reactive alone."""
    reactive, predictive, needed = await compare_black_friday()
    assert reactive.acked == reactive.published and predictive.acked == predictive.published
    assert time_to_size(predictive, needed) < time_to_size(reactive, needed)
    assert predictive.backlog_peak <= 0.7 * reactive.backlog_peak, (
        predictive.backlog_peak,
        reactive.backlog_peak,
    )


async def test_cold_start_neither_alerts_nor_shrinks_the_pool() -> None:
    """While the initial consumers warm up there is no 'no healthy consumer' alert and
    the autoscaler does not shrink the pool it is waiting for."""
    clock = FakeClock()

    async def work(d: Delivery) -> None:
        await clock.sleep(SERVICE)

    cfg = scaler_cfg(consumers=6, startup_delay=4.0, scale_down_window=0.0)
    async with Engine(cfg, handler=work, clock=clock) as engine:
        await clock.advance(3.5)
        snap = engine.snapshot()
        assert len(engine.consumer_ids()) == 6
        assert not any(a.name == "no-healthy-consumer" for a in snap.alerts)
        assert engine.autoscaler.decisions[-1].reason == "warming"
        await clock.advance(2.0)  # warm now, and idle: it may shrink
        await clock.advance(5.0)
        assert len(engine.consumer_ids()) < 6


async def test_snapshot_carries_the_last_decision_and_the_forecast_made_for_now() -> None:
    """snapshot().autoscaler: the newest decision, and the forecast made `horizon` s ago."""
    clock = FakeClock()

    async def work(d: Delivery) -> None:
        await clock.sleep(SERVICE)

    cfg = scaler_cfg(forecast_horizon=3.0, startup_delay=0.0)
    async with Engine(cfg, handler=work, clock=clock) as engine:
        view = engine.snapshot().autoscaler
        assert view is not None and view.last is None and view.forecast_for_now is None
        for _ in range(60):  # 6 s at 20 msg/s
            await engine.publish(b"x")
            await engine.publish(b"x")
            await clock.advance(0.1)
        view = engine.snapshot().autoscaler
        assert view is not None and view.horizon == 3.0 and view.predictive
        assert view.last is engine.autoscaler.decisions[-1]
        made = [d for d in engine.autoscaler.decisions if d.at <= clock.now() - 3.0][-1]
        assert view.forecast_for_now == made.forecast_rate > 0
        engine.set_autoscale(False)
        await clock.run_until(lambda: engine.broker.outstanding() == 0, limit=300)


# -- the default scenario (its engine settings and simulated handler) -------------------------


class _Latency(Protocol):
    """What a scenario's handler spec says of its lognormal latency."""

    @property
    def median_ms(self) -> float: ...

    @property
    def p99_ms(self) -> float: ...


def _mean_latency(spec: _Latency) -> float:
    """The mean of the scenario's lognormal handler latency, seconds."""
    median = spec.median_ms / 1000
    sigma = math.log(spec.p99_ms / spec.median_ms) / 2.3263478740408408
    return median * math.exp(sigma * sigma / 2)


async def _default_scenario_run(
    rate: Callable[[float], float], seconds: float
) -> tuple[list[tuple[float, int, float]], float, float]:
    """The default scenario's engine and handler, autoscaler on, load rate(t) on a fake
    clock; samples (t, pool size, forecast) twice a second; returns them, the mean
    handler latency and the utilisation target."""
    from ccdash.scenario import load_scenario

    clock = FakeClock()
    sc = load_scenario(None)
    engine = sc.make_engine(clock=clock, seed=3)
    samples: list[tuple[float, int, float]] = []
    owed, step = 0.0, 0.05
    async with engine:
        engine.set_autoscale(True)
        start = clock.now()
        while (t := clock.now() - start) < seconds:
            owed += rate(t) * step
            while owed >= 1:
                await engine.publish({"type": "order"})
                owed -= 1
            await clock.advance(step)
            if round(t / step) % 10 == 0:
                d = engine.autoscaler.decisions
                samples.append((t, engine.desired, d[-1].forecast_rate if d else 0.0))
        engine.set_autoscale(False)
        await clock.run_until(lambda: engine.broker.outstanding() == 0, limit=60)
        await engine.stop(grace=0)  # nothing in hand: no grace to wait out on a fake clock
    return samples, _mean_latency(sc.handler), engine.config.target_utilisation


async def test_the_pool_settles_on_what_the_default_scenario_needs_and_shrinks() -> None:
    """Default scenario, steady 80 msg/s then 20 msg/s: once settled the pool is within
    one consumer of rate x mean latency / utilisation target, and it shrinks when the
    load drops."""
    samples, mean, target = await _default_scenario_run(
        lambda t: 80.0 if t < 60 else 20.0, seconds=120.0
    )
    high = [n for t, n, _ in samples if 40 <= t < 60]
    low = [n for t, n, _ in samples if 100 <= t < 120]
    need_high = math.ceil(80 * mean / target)  # whole consumers
    need_low = math.ceil(20 * mean / target)
    assert all(abs(n - need_high) <= 1 for n in high), (need_high, high)
    assert all(abs(n - need_low) <= 1 for n in low), (need_low, low)
    assert max(low) < min(high)


async def test_the_forecast_on_the_default_sine_load_stays_within_its_range() -> None:
    """The default scenario's sine (40..120 msg/s): the smoothed forecast never falls to
    0 nor overshoots far past the peak, and the pool stays near the peak's need."""
    from ccdash.scenario import load_scenario

    shape = load_scenario(None).load
    samples, mean, target = await _default_scenario_run(
        lambda t: shape.rate + shape.amplitude * math.sin(2 * math.pi * t / shape.period),
        seconds=60.0,
    )
    forecasts = [f for t, _, f in samples if t >= 5]
    assert min(forecasts) >= 15 and max(forecasts) <= 180, (min(forecasts), max(forecasts))
    peak_need = (shape.rate + shape.amplitude) * mean / target
    assert max(n for _, n, _ in samples) <= math.ceil(peak_need) + 1


async def test_paused_consumption_holds_the_pool_and_says_why() -> None:
    """While the operator has paused consumption the backlog grows by design: the
    autoscaler holds the pool at its size (decisions say `paused`) instead of adding
    consumers that could take nothing; once resumed it scales on the backlog again."""
    clock = FakeClock()

    async def work(d: Delivery) -> None:
        await clock.sleep(SERVICE)

    async with Engine(scaler_cfg(startup_delay=0.0), handler=work, clock=clock) as engine:
        await engine.pause()
        for _ in range(200):
            await engine.publish(b"x")
        await clock.advance(6.0)
        assert engine.desired == 2
        held = engine.autoscaler.decisions[-1]
        assert (held.applied, held.reason) == (2, "paused")
        await engine.resume()
        await clock.advance(3.0)
        assert engine.desired > 2
        engine.set_autoscale(False)
        await engine.stop(grace=0)
