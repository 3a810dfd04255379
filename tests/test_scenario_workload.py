"""The workload on a fake clock: load, drills, the loss checker and the report."""

from __future__ import annotations

import asyncio
import io
import math
import random
from collections.abc import Coroutine
from typing import Any

import pytest

from ccdash import Delivery, Engine, EngineConfig
from ccdash.brokers.base import QueueConfig
from ccdash.brokers.memory import MemoryBroker
from ccdash.clock import FakeClock
from ccdash.engine.snapshot import Event
from ccdash.headless.run import run_demo
from ccdash.headless.views import PlainView
from ccdash.scenario import (
    DRILL_ACTIONS,
    REPORT_FIELDS,
    Scenario,
    ScenarioError,
    Workload,
    exit_code,
    load_scenario,
    parse_scenario,
)
from ccdash.scenario.arrivals import arrival_times
from ccdash.scenario.ledger import BatchTap, Tap
from ccdash.scenario.simulated import Simulation

SMALL = """
[scenario]
name = "small"
duration = 4
seed = 3
drain_timeout = 10
[engine]
consumers = 3
heartbeat_interval = 0.5
heartbeat_timeout = 1.5
visibility_timeout = 10
[load]
rate = 40
[handler]
latency = "constant"
ms = 10
"""


async def drive(clock: FakeClock, coro: Coroutine[Any, Any, Any], limit: float = 600) -> Any:
    """Run `coro` to the end, moving the fake clock as it waits."""
    task = asyncio.ensure_future(coro)
    await clock.run_until(task.done, step=0.05, limit=limit)
    return await task


async def demo(sc: Scenario, **kw: Any) -> tuple[dict[str, Any], str]:
    """run_demo on a fake clock; returns the report and the plain output."""
    clock = kw.pop("clock", None) or FakeClock()
    out = io.StringIO()
    report = await drive(clock, run_demo(sc, PlainView(out), clock=clock, **kw))
    return report, out.getvalue()


async def test_default_demo_reports_every_field_and_loses_nothing() -> None:
    """A short default run: every report field is there, nothing lost, ok."""
    report, _ = await demo(load_scenario(None), duration=5)
    assert set(REPORT_FIELDS) <= set(report)
    assert set(report["latency_ms"]) == {"p50", "p95", "p99"}
    assert report["lost"] == 0 and report["ok"] is True and exit_code(report) == 0
    assert report["published"] == report["acked"] + report["dead_lettered"]
    assert report["published"] == report["engine"]["published"]
    assert all(
        {"consumer", "detected_after_s", "recovered_after_s"} <= set(f) for f in report["failovers"]
    )
    assert all("ok" in c for c in report["slo"])


async def test_failover_drill_measures_detection_and_recovery_and_passes() -> None:
    """failover-drill: each kill/hang gets detection and recovery times within the SLOs."""
    sc = load_scenario("failover-drill")
    report, out = await demo(sc)
    faults = [d for d in report["drills"] if d["action"] in ("kill", "hang")]
    assert {d["action"] for d in faults} == {"kill", "hang"}
    for d in faults:
        assert d["verdict"] == "pass", d
        assert 0 <= d["detected_after_s"] <= sc.slo.max_detection_s
        assert d["detected_after_s"] <= d["recovered_after_s"] <= sc.slo.max_recovery_s
    hang = next(d for d in faults if d["action"] == "hang")
    # a hang is caught by the health check, not at once
    assert hang["detected_after_s"] >= sc.engine.heartbeat_timeout
    assert hang["held"] > 0
    assert len(report["failovers"]) == len(faults)
    poison = next(d for d in report["drills"] if d["action"] == "poison")
    assert poison["verdict"] == "pass" and report["dead_lettered"] >= 5
    assert report["ok"] and report["lost"] == 0 and exit_code(report) == 0
    assert "result: PASS" in out


class DroppingBroker(MemoryBroker):
    """A broker with a bug: it says it accepted one message but never stores it."""

    def __init__(self, config: QueueConfig, clock: FakeClock, drop_at: int) -> None:
        super().__init__(config, clock=clock)
        self.calls = 0
        self.drop_at = drop_at
        self.dropped: str | None = None

    def publish_nowait(self, body: Any, *, priority: int = 0, dedup_id: str | None = None) -> str:
        self.calls += 1
        if self.calls == self.drop_at:
            self.dropped = f"m-dropped-{self.calls}"
            return self.dropped
        return super().publish_nowait(body, priority=priority, dedup_id=dedup_id)


async def test_loss_checker_catches_a_message_the_broker_dropped() -> None:
    """A broker that silently drops one message: lost == 1, the run fails, exit 1."""
    sc = parse_scenario(SMALL)
    clock = FakeClock()
    broker = DroppingBroker(QueueConfig(visibility_timeout=10, seed=1), clock, drop_at=25)
    report, out = await demo(sc, clock=clock, broker=broker)
    assert broker.dropped is not None
    assert report["lost"] == 1
    assert report["unaccounted_ids"] == [broker.dropped]
    assert report["ok"] is False and exit_code(report) == 1
    no_loss = next(c for c in report["slo"] if c["name"] == "no_loss")
    assert no_loss["ok"] is False and no_loss["actual"] == 1
    assert "result: FAIL (no_loss failed)" in out


class RoundTripBroker(MemoryBroker):
    """A broker whose publish returns only after a pause, as a remote one does; the
    consumers keep handling meanwhile."""

    stores_on_publish_nowait = False

    async def publish(self, body: Any, *, priority: int = 0, dedup_id: str | None = None) -> str:
        await asyncio.sleep(0)
        return await super().publish(body, priority=priority, dedup_id=dedup_id)


async def test_burst_drill_counts_messages_handled_while_it_was_still_publishing() -> None:
    """On a broker where publishing waits, the first burst messages are handled before
    the last is published: the drill still sees all of them handled and passes."""
    sc = parse_scenario(SMALL + '[[drills]]\nat = 1\naction = "burst"\ncount = 30\n')
    clock = FakeClock()
    broker = RoundTripBroker(QueueConfig(visibility_timeout=10, seed=1), clock=clock)

    async def instant(d: Delivery) -> None:  # done before the publisher's next step
        return None

    report, out = await demo(sc, clock=clock, broker=broker, handler=instant)
    burst = next(d for d in report["drills"] if d["action"] == "burst")
    assert burst["verdict"] == "pass", out
    assert report["ok"] and report["unconfirmed_publishes"] == 0


async def test_a_run_too_short_to_judge_throughput_does_not_fail_on_it() -> None:
    """The default scenario squeezed into 1 s: consumers starting, the drain and the
    drills settling weigh more than its load, so acked / run time is far under the
    SLO's 40 msg/s. That check is listed apart as not judged, saying why, and the run
    passes on the checks that were judged (it failed on throughput, exit 1)."""
    report, out = await demo(load_scenario(None), duration=1)
    assert report["ok"] is True and exit_code(report) == 0, [
        c for c in report["slo"] if not c["ok"]
    ]
    assert "min_throughput_per_s" not in {c["name"] for c in report["slo"]}
    (skipped,) = report["slo_not_judged"]
    assert skipped["name"] == "min_throughput_per_s" and skipped["limit"] == 40
    assert skipped["actual"] == report["throughput_per_s"] < 40
    assert "ran 1.0 s" in skipped["why"] and "at least 5 s" in skipped["why"]
    assert "not judged" in out and "result: PASS" in out


async def test_a_run_that_published_nothing_does_not_fail_on_latency() -> None:
    """`--duration 1e-7`: the load is over before its first message, so there is no
    latency to judge. The latency SLO is listed as not judged, saying why, and the run
    passes on what was judged (it failed on p99 latency: actual None)."""
    report, out = await demo(load_scenario(None), duration=1e-7)
    assert report["published"] == 0
    assert report["ok"] is True and exit_code(report) == 0, [
        c for c in report["slo"] if not c["ok"]
    ]
    skipped = {c["name"]: c for c in report["slo_not_judged"]}
    assert "max_latency_p99_ms" in skipped and skipped["max_latency_p99_ms"]["actual"] is None
    assert "no message was published" in skipped["max_latency_p99_ms"]["why"]
    assert not any(c["name"].startswith("max_latency") for c in report["slo"])
    assert "max_latency_p99_ms: no message was published" in out and "result: PASS" in out


async def test_a_priority_with_nothing_published_is_not_judged_on_latency() -> None:
    """priority-mix for 0.02 s publishes a bulk message but none of priority 9: the
    priority-9 latency SLO is listed as not judged, naming the priority, and the run
    passes (it failed on it: actual None, while the run published 1)."""
    report, out = await demo(load_scenario("priority-mix"), duration=0.02)
    assert report["published"] > 0
    assert report["ok"] is True and exit_code(report) == 0, [
        c for c in report["slo"] if not c["ok"]
    ]
    assert report["published_by_priority"].get("9", 0) == 0
    skipped = {c["name"]: c for c in report["slo_not_judged"]}
    check = skipped["max_latency_p99_ms_by_priority.9"]
    assert check["actual"] is None and "no message of priority 9" in check["why"]
    assert "result: PASS" in out


async def test_a_priority_published_but_never_handled_fails_its_latency() -> None:
    """Priority-9 messages published and none handled: its latency SLO still fails."""
    sc = parse_scenario(
        SMALL
        + '[[load.mix]]\ntype = "urgent"\nshare = 1.0\npriority = 9\n'
        + '[slo]\nmax_latency_p99_ms_by_priority = { "9" = 1000 }\n'
    )

    async def failing(d: Delivery) -> None:
        raise RuntimeError("no")

    report, _ = await demo(sc, handler=failing, duration=2)
    assert report["published"] > 0 and report["acked"] == 0  # every one of priority 9
    failed = [c["name"] for c in report["slo"] if not c["ok"]]
    assert "max_latency_p99_ms_by_priority.9" in failed


async def test_not_judged_latency_says_how_long_the_load_ran_and_why() -> None:
    """A steady 0.05 msg/s load for 12 s publishes nothing: the why reads the load time
    as a number (it printed `1e+01 s`) and the result line does not call the run too
    short (it said `not judged: the run was too short`)."""
    sc = parse_scenario(
        SMALL.replace("rate = 40", 'rate = 0.05\narrivals = "even"')
        + "[slo]\nmax_latency_p99_ms = 1000\n"
    )
    report, out = await demo(sc, duration=12)
    assert report["published"] == 0
    (check,) = report["slo_not_judged"]
    assert "(the load ran 12" in check["why"] and "e+" not in check["why"], check["why"]
    assert "too short" not in out and "result: PASS" in out
    assert "max_latency_p99_ms not judged (see why above))" in out, out


async def test_latency_is_judged_when_messages_were_published_but_none_handled() -> None:
    """Messages published and none handled (every one fails to the DLQ): no latency,
    and the latency SLO fails; only a run that published nothing leaves it unjudged."""
    sc = parse_scenario(SMALL + "[slo]\nmax_latency_p99_ms = 1000\n")

    async def failing(d: Delivery) -> None:
        raise RuntimeError("no")

    report, _ = await demo(sc, handler=failing, duration=2)
    assert report["published"] > 0 and report["acked"] == 0
    assert "max_latency_p99_ms" in [c["name"] for c in report["slo"] if not c["ok"]]


async def test_throughput_is_judged_over_enough_load() -> None:
    """Over 5 s of load the throughput SLO is judged: an impossible one fails the run."""
    sc = parse_scenario(SMALL + "[slo]\nmin_throughput_per_s = 1000000\n")
    report, out = await demo(sc, duration=6)
    assert [c["name"] for c in report["slo"] if not c["ok"]] == ["min_throughput_per_s"]
    assert report["slo_not_judged"] == [] and exit_code(report) == 1
    assert "result: FAIL (min_throughput_per_s failed)" in out


async def test_impossible_slo_fails_the_run_and_names_the_slo() -> None:
    """An SLO no run can meet: exit status 1, and the report names that SLO."""
    sc = parse_scenario(SMALL + "[slo]\nmax_latency_p99_ms = 0.001\n")
    report, out = await demo(sc)
    assert report["lost"] == 0
    failed = [c["name"] for c in report["slo"] if not c["ok"]]
    assert failed == ["max_latency_p99_ms"]
    assert exit_code(report) == 1
    assert "result: FAIL (max_latency_p99_ms failed)" in out


async def test_a_skipped_fault_drill_is_not_a_failover() -> None:
    """A kill drill with no consumer left to kill is skipped: it is in `drills`, but no
    consumer failed, so `failovers` (and the text report's line) leave it out."""
    drills = '[[drills]]\nat = 1\naction = "scale"\nto = 0\n'
    drills += '[[drills]]\nat = 2\naction = "kill"\ntarget = "busiest"\n'
    sc = parse_scenario(SMALL.replace("consumers = 3", "consumers = 3\nmin_consumers = 0") + drills)
    report, out = await demo(sc)
    kill = report["drills"][-1]
    assert kill["action"] == "kill" and kill["verdict"] == "skipped"
    assert report["failovers"] == []
    assert "None" not in out


async def _published_sequence(seed: int) -> tuple[list[Any], list[Any], str]:
    sc = load_scenario("failover-drill")
    clock = FakeClock()
    engine = sc.make_engine(clock=clock, seed=seed)
    wl = Workload(sc, engine, seed=seed)
    sent: list[Any] = []
    real_publish = engine.publish

    async def spy(body: Any, priority: int = 0, dedup_id: str | None = None) -> str:
        sent.append((round(clock.now() - 1000.0, 6), body, priority))
        return await real_publish(body, priority, dedup_id)

    engine.publish = spy  # type: ignore[method-assign]

    async def run() -> None:
        async with engine:
            await wl.run(duration=6)

    await drive(clock, run())
    drills = [(round(d.at, 6), d.action, d.target) for d in wl.drill_results]
    return sent, drills, wl.sequence_digest()


async def test_same_seed_same_published_sequence_and_drill_times() -> None:
    """Two runs with one seed publish the same messages and fire the same drills alike."""
    a = await _published_sequence(42)
    b = await _published_sequence(42)
    assert len(a[0]) > 100
    assert a == b
    c = await _published_sequence(43)
    assert c[0] != a[0] and c[2] != a[2]
    assert [d[:2] for d in c[1]] == [d[:2] for d in a[1]]  # drill times come from the file


async def test_duration_scales_the_timeline_to_fit() -> None:
    """--duration 5 on a 20 s scenario fires its drills at a quarter of their times."""
    sc = load_scenario("failover-drill")
    report, _ = await demo(sc, duration=5)
    assert [d["at"] for d in report["drills"]] == [s.at / 4 for s in sc.drills]
    assert report["planned_duration_s"] == 5 and report["ok"]


async def test_batch_scenario_runs_through_the_batch_handler() -> None:
    """batch.toml: the engine gets a batch handler; completions are still checked."""
    sc = load_scenario("batch")
    engine = sc.make_engine(clock=FakeClock())
    assert isinstance(engine.batch_handler, BatchTap) and engine.handler is None
    report, _ = await demo(sc, duration=5)
    assert report["ok"] and report["lost"] == 0
    assert report["published"] == report["acked"] + report["dead_lettered"] > 1000


async def test_priority_mix_serves_urgent_messages_first() -> None:
    """priority-mix: under a backlog the urgent priority's p99 stays far below the bulk's."""
    report, _ = await demo(load_scenario("priority-mix"))
    by = report["latency_ms_by_priority"]
    assert by["9"]["p99"] * 5 < by["0"]["p99"]
    assert report["ok"]


async def test_black_friday_publishes_ten_times_the_load_at_the_peak() -> None:
    """black-friday: arrivals at the peak are about 10x those at the start; the autoscaler
    grows the pool ahead of the ramp and shrinks it after; the run passes."""
    sc = load_scenario("black-friday")
    clock = FakeClock()
    engine = sc.make_engine(clock=clock)
    wl = Workload(sc, engine)

    async def run() -> None:
        async with engine:
            await wl.run()

    await drive(clock, run())
    times = [t - wl.started_at for t in wl.ledger.published.values()]  # type: ignore[operator]
    early = sum(1 for t in times if 0 <= t < 4)
    peak = sum(1 for t in times if 14 <= t < 18)
    assert 7 < peak / early < 13
    report = wl.report()
    moves = report["scaling_events"]
    assert moves and all(e["source"] == "autoscaler" for e in moves)
    assert any(e["reason"] == "forecast" and e["to"] > e["from"] for e in moves)
    auto = report["autoscaler"]
    assert auto["enabled"] and auto["predictive"] and auto["decisions"] > 20
    assert auto["changes"] == len(moves) and auto["up"] > 0 and auto["down"] > 0
    assert auto["peak_consumers"] >= 12  # 400 msg/s at ~20 ms each, 70% busy
    assert auto["final_consumers"] < auto["peak_consumers"]
    assert report["ok"], [c for c in report["slo"] if not c["ok"]]


async def test_interactive_drills_return_records_that_fill_in() -> None:
    """trigger_drill / inject_burst / inject_poison during an open-ended run."""
    sc = parse_scenario(SMALL + '[[drills]]\nat = 1\naction = "kill"\nname = "first kill"\n')
    clock = FakeClock()
    engine = sc.make_engine(clock=clock)
    wl = Workload(sc, engine)
    assert wl.available_drills()[:2] == ["first kill", "kill"]
    assert set(DRILL_ACTIONS) <= set(wl.available_drills())

    async def operator() -> dict[str, Any]:
        async with engine:
            run = asyncio.ensure_future(wl.run(duration=math.inf))
            await clock.sleep(2)
            kill = await wl.trigger_drill("kill", target="busiest")
            hang = await wl.trigger_drill("hang", target="idlest")
            burst = await wl.inject_burst(50)
            poison = await wl.inject_poison(2)
            named = await wl.trigger_drill("first kill")
            missing = await wl.trigger_drill("kill", target="c99")
            with pytest.raises(ScenarioError, match="did you mean 'hang'"):
                await wl.trigger_drill("hnag")
            await clock.sleep(5)
            wl.stop("operator")
            await run
            return {
                "kill": kill,
                "hang": hang,
                "burst": burst,
                "poison": poison,
                "named": named,
                "missing": missing,
            }

    recs = await drive(clock, operator())
    assert recs["kill"].target and recs["kill"].detected_after_s == 0.0
    assert recs["hang"].detected_after_s is not None
    assert recs["hang"].detected_after_s >= sc.engine.heartbeat_timeout
    assert recs["hang"].verdict == "pass"
    assert recs["burst"].verdict == "pass" and len(recs["burst"].held) == 50
    assert recs["poison"].verdict == "pass" and recs["poison"].recovered_after_s is not None
    assert recs["named"].name == "first kill" and recs["named"].verdict == "pass"
    assert recs["missing"].verdict == "skipped" and "c99" in recs["missing"].detail
    assert [r.source for r in wl.drill_results][:1] == ["scheduled"]
    report = wl.report()
    assert report["lost"] == 0 and report["planned_duration_s"] is None
    assert report["interrupted"] and report["stopped_by"] == "operator"


async def test_stop_ends_the_run_interrupted_with_nothing_lost() -> None:
    """stop() mid-run: the report says interrupted, nothing lost, exit 130."""
    sc = load_scenario(None)
    clock = FakeClock()
    engine = sc.make_engine(clock=clock)
    wl = Workload(sc, engine)

    async def run() -> None:
        async with engine:
            task = asyncio.ensure_future(wl.run())
            await clock.sleep(3)
            wl.stop("SIGINT")
            await task

    await drive(clock, run())
    report = wl.report()
    assert report["interrupted"] and report["stopped_by"] == "SIGINT"
    assert report["duration_s"] == pytest.approx(3, abs=0.1)
    assert report["lost"] == 0 and report["published"] > 100
    assert report["ok"] is False and exit_code(report) == 130


async def test_slow_drill_slows_a_consumer_for_a_while() -> None:
    """A slow drill with `for` slows one consumer, then restores it."""
    sc = parse_scenario(
        SMALL + '[[drills]]\nat = 1\naction = "slow"\ntarget = "c2"\nfactor = 5\nfor = 1\n'
    )
    clock = FakeClock()
    engine = sc.make_engine(clock=clock)
    wl = Workload(sc, engine)
    factors = []

    async def run() -> None:
        async with engine:
            task = asyncio.ensure_future(wl.run())
            await clock.sleep(1.5)
            factors.append(engine.snapshot().consumers[1].slow_factor)
            await clock.sleep(1.0)
            factors.append(engine.snapshot().consumers[1].slow_factor)
            await task

    await drive(clock, run())
    assert factors == [5.0, 1.0]
    assert wl.drill_results[0].verdict == "done" and wl.drill_results[0].target == "c2"


async def test_own_handler_is_checked_for_loss_too() -> None:
    """make_engine(handler=...) wraps the user's handler so completions are recorded."""
    seen: list[str] = []

    async def handler(d: Delivery) -> None:
        seen.append(d.message_id)

    sc = parse_scenario(SMALL)
    clock = FakeClock()
    engine = sc.make_engine(clock=clock, handler=handler)
    assert isinstance(engine.handler, Tap)
    wl = Workload(sc, engine)

    async def run() -> None:
        async with engine:
            await wl.run()

    await drive(clock, run())
    report = wl.report()
    assert report["acked"] == report["published"] == len(set(seen)) > 100
    assert report["lost"] == 0 and report["ok"]


async def test_a_message_handled_but_dead_lettered_counts_as_dead_not_acked() -> None:
    """The report's dead_lettered is what the DLQ holds at the end (DESIGN's contract),
    even for a message whose handler returned but whose lease was lost first (its ack
    refused): counted once, as dead, never as acked, so published = acked + dead."""
    engine_box: list[Engine] = []
    victims: list[str] = []

    async def handler(d: Delivery) -> None:
        if not victims:  # the first one loses its lease to the DLQ before returning
            victims.append(d.message_id)
            await engine_box[0].broker.nack(d.receipt, "lease lost meanwhile")

    sc = parse_scenario(SMALL.replace("visibility_timeout = 10", "max_attempts = 1"))
    clock = FakeClock()
    engine = sc.make_engine(clock=clock, handler=handler)
    engine_box.append(engine)
    wl = Workload(sc, engine)

    async def run() -> None:
        async with engine:
            await wl.run()

    await drive(clock, run())
    report = wl.report()
    assert [d.message_id for d in engine.snapshot(max_dead=10).dead_letters] == victims
    assert report["dead_lettered"] == 1
    assert report["acked"] == report["published"] - 1 > 100
    assert report["lost"] == 0


async def test_workload_taps_an_engine_it_did_not_make() -> None:
    """An engine built by hand is tapped by the Workload before it starts."""

    async def handler(d: Delivery) -> None:
        return None

    clock = FakeClock()
    engine = Engine(EngineConfig(consumers=2), handler=handler, clock=clock)
    wl = Workload(parse_scenario(SMALL), engine)
    assert isinstance(engine.handler, Tap)

    async def run() -> None:
        async with engine:
            await wl.run(duration=1)

    await drive(clock, run())
    assert wl.report()["lost"] == 0 and wl.report()["acked"] > 10


@pytest.mark.skipif("rolling-update" not in DRILL_ACTIONS, reason="engine has no rolling updates")
async def test_rolling_update_drill_replaces_every_consumer_under_load() -> None:
    """A rolling-update drill finishes, every consumer runs the new version, nothing lost."""
    sc = parse_scenario(SMALL + '[[drills]]\nat = 1\naction = "rolling-update"\nversion = "v2"\n')
    clock = FakeClock()
    engine = sc.make_engine(clock=clock)
    wl = Workload(sc, engine)

    async def run() -> None:
        async with engine:
            await wl.run()
            assert {
                c.version for c in engine.snapshot().consumers if c.state in ("idle", "processing")
            } == {"v2"}

    await drive(clock, run())
    assert wl.drill_results[0].verdict == "pass"
    assert wl.report()["lost"] == 0


async def test_rolling_update_drill_installs_the_demos_next_simulated_handler() -> None:
    """Without a version, the drill rolls to v2: the simulated handler's next version
    (quicker), still tapped for the loss checker; completions keep being counted."""
    sc = parse_scenario(SMALL + '[[drills]]\nat = 1\naction = "rolling-update"\n')
    clock = FakeClock()
    engine = sc.make_engine(clock=clock)
    wl = Workload(sc, engine)
    before = engine.handler

    async def run() -> None:
        async with engine:
            await wl.run()

    await drive(clock, run())
    after = engine.handler
    assert isinstance(before, Tap) and isinstance(after, Tap) and after is not before
    assert after.ledger is wl.ledger
    old_sim, new_sim = before.inner.__self__, after.inner.__self__  # type: ignore[attr-defined]
    assert isinstance(new_sim, Simulation) and new_sim.version == "v2"
    assert new_sim.speed < old_sim.speed
    assert engine.version == "v2"
    assert wl.drill_results[0].verdict == "pass"
    [fired] = [e for e in wl.events if e.kind == "drill-fired"]
    assert "rolling update to v2 (the demo's next simulated handler)" in fired.message
    report = wl.report()
    assert report["lost"] == 0 and report["acked"] == report["published"]


async def test_rolling_update_keeps_a_handler_of_your_own() -> None:
    """With your own handler, a rolling update relabels the consumers but keeps it."""
    sc = parse_scenario(SMALL + '[[drills]]\nat = 1\naction = "rolling-update"\nversion = "blue"\n')
    clock = FakeClock()

    async def mine(d: Delivery) -> None:
        await clock.sleep(0.01)

    engine = sc.make_engine(clock=clock, handler=mine)
    wl = Workload(sc, engine)
    before = engine.handler

    async def run() -> None:
        async with engine:
            await wl.run()

    await drive(clock, run())
    assert engine.handler is before and engine.version == "blue"
    assert wl.drill_results[0].verdict == "pass"


async def test_drill_steps_go_through_the_engines_event_stream() -> None:
    """Every drill step is an engine event (drill-fired, drill-pass, ...), so log files and
    the dashboard see them; the run's own event list has each exactly once."""
    sc = parse_scenario(
        SMALL + '[[drills]]\nat = 1\naction = "kill"\n'
        '[[drills]]\nat = 2\naction = "poison"\ncount = 2\n'
    )
    clock = FakeClock()
    engine = sc.make_engine(clock=clock)
    seen: list[Event] = []
    engine.add_listener(seen.append)
    wl = Workload(sc, engine)

    async def run() -> None:
        async with engine:
            await wl.run()

    await drive(clock, run())
    drill_events = [e for e in seen if e.kind.startswith("drill-")]
    kinds = [e.kind for e in drill_events]
    assert kinds.count("drill-fired") == 2 and kinds.count("drill-pass") == 2
    assert all(dict(e.fields)["source"] == "drill" for e in drill_events)
    assert {dict(e.fields)["action"] for e in drill_events} == {"kill", "poison"}
    local = [e for e in wl.events if e.kind.startswith("drill-")]
    assert [e.kind for e in local] == kinds  # once each, not twice


def test_even_arrivals_follow_the_rate_exactly() -> None:
    """`even` arrivals: one per 1/rate seconds, so the count is the rate's integral."""
    times = list(arrival_times(lambda t: 50.0, 50.0, random.Random(1), mode="even", until=2.0))
    assert len(times) in (99, 100)
    assert times == sorted(times)


def test_poisson_arrivals_average_the_rate() -> None:
    """Poisson arrivals: about rate x time of them, with random gaps."""
    times = list(
        arrival_times(lambda t: 100.0 if t < 5 else 0.0, 100.0, random.Random(7), until=10.0)
    )
    assert 450 < len(times) < 550
    assert max(times) < 5.0


class LateReplyBroker(MemoryBroker):
    """Stores a publish at once but its reply takes a while, as a remote broker's can."""

    stores_on_publish_nowait = False

    async def publish(self, body: Any, *, priority: int = 0, dedup_id: str | None = None) -> str:
        mid = self.publish_nowait(body, priority=priority, dedup_id=dedup_id)
        await self.clock.sleep(0.3)  # the reply is on its way
        return mid


async def test_publish_in_doubt_at_the_end_is_settled_by_the_brokers_answer() -> None:
    """A publish the broker stored but had not yet confirmed when publishing ended is counted
    published once the broker answers, not given up: the run passes with nothing unconfirmed."""
    clock = FakeClock()
    broker = LateReplyBroker(QueueConfig(visibility_timeout=10, seed=1), clock=clock)
    report, out = await demo(parse_scenario(SMALL), clock=clock, broker=broker)
    assert report["unconfirmed_publishes"] == 0, out
    assert report["published"] == report["engine"]["published"] == report["acked"]
    assert report["ok"] and report["lost"] == 0


class SilentBroker(MemoryBroker):
    """Takes the first `answered` publishes; never answers one after them."""

    stores_on_publish_nowait = False

    def __init__(self, config: QueueConfig, clock: FakeClock, answered: int) -> None:
        super().__init__(config, clock=clock)
        self.answered = answered

    async def publish(self, body: Any, *, priority: int = 0, dedup_id: str | None = None) -> str:
        if self.published >= self.answered:
            await asyncio.get_running_loop().create_future()  # the reply never comes
        return self.publish_nowait(body, priority=priority, dedup_id=dedup_id)


def result_lines(out: str) -> list[str]:
    """The report's lines that state a result (its headline and its last line)."""
    return [line for line in out.splitlines() if "result:" in line]


async def test_unconfirmed_publishes_are_a_named_check_and_the_report_has_one_verdict() -> None:
    """A publish the broker never answers fails a named check; the headline and the last line
    of the report both say FAIL (before, the last line said PASS under a FAIL headline)."""
    clock = FakeClock()
    broker = SilentBroker(QueueConfig(visibility_timeout=10, seed=1), clock, answered=20)
    report, out = await demo(parse_scenario(SMALL), clock=clock, broker=broker)
    confirmed = next(c for c in report["slo"] if c["name"] == "publishes_confirmed")
    assert confirmed["ok"] is False and confirmed["actual"] == report["unconfirmed_publishes"] == 1
    assert report["ok"] is False and exit_code(report) == 1
    lines = result_lines(out)
    assert len(lines) == 2 and all("FAIL" in line and "PASS" not in line for line in lines), lines
    assert "publishes_confirmed failed" in lines[-1]


async def test_a_queue_with_a_past_reports_this_runs_figures_apart_from_its_lifetime() -> None:
    """On a queue that had traffic before the run, `redelivered` and the engine figures are this
    run's; the queue's lifetime counters come separately, labelled, in the JSON and the text."""
    clock = FakeClock()
    broker = MemoryBroker(QueueConfig(visibility_timeout=10, seed=1), clock=clock)
    for i in range(30):  # the queue's past: 30 messages, each failed once then acked
        broker.publish_nowait({"past": i})
    for _ in range(2):
        for d in await broker.receive(["old"] * 30):
            if d.attempt == 1:
                await broker.nack(d.receipt, "boom", delay=0)
            else:
                await broker.ack(d.receipt)
    report, out = await demo(parse_scenario(SMALL), clock=clock, broker=broker)
    assert report["redelivered"] == 0  # SMALL's handler never fails
    assert report["engine"]["published"] == report["published"]
    assert report["engine"]["acked"] == report["acked"]
    life = report["queue_lifetime"]
    assert life["redelivered"] == 30 and life["published"] == 30 + report["published"]
    assert "queue lifetime" in out


async def test_a_publish_cut_off_by_a_cancelled_run_never_reports_an_unretrieved_error() -> None:
    """The dashboard quits while Redis is away: the load task is cancelled in the middle
    of a publish; when the broker later fails that publish (BrokerClosed), asyncio must
    not print `Task exception was never retrieved` with a traceback over the terminal."""
    import gc
    import types

    from ccdash.brokers.types import BrokerClosed
    from ccdash.scenario.ledger import Ledger
    from ccdash.scenario.publishing import Publisher

    loop = asyncio.get_running_loop()
    stored: asyncio.Future[str] = loop.create_future()

    async def publish(body: Any, priority: int = 0) -> str:
        return await stored

    engine = types.SimpleNamespace(
        clock=FakeClock(),
        broker=types.SimpleNamespace(
            stores_on_publish_nowait=False, config=types.SimpleNamespace(capacity=None)
        ),
        publish=publish,
    )
    reported: list[dict[str, Any]] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
    try:
        pub = Publisher(
            load_scenario(None),
            engine,  # type: ignore[arg-type]
            Ledger(engine.clock),
            random.Random(1),
            lambda _b: None,
            lambda _k, _m: None,
        )
        run = asyncio.ensure_future(pub.publish({"n": 1}, 0))
        await asyncio.sleep(0)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        stored.set_exception(BrokerClosed("broker closed before Redis stored the message"))
        for _ in range(3):
            await asyncio.sleep(0)
        del run, pub
        gc.collect()
    finally:
        loop.set_exception_handler(old)
    assert [c.get("message") for c in reported] == []
