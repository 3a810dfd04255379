"""Alert rules: fire after `for`, resolve, de-duplicate; bad rules are clear errors."""

from __future__ import annotations

import pytest

from ccdash import Delivery, Engine, EngineConfig
from ccdash.clock import FakeClock
from ccdash.engine.rules import AlertRule, RuleError
from ccdash.engine.states import Severity


async def test_rule_fires_after_for_resolves_and_deduplicates() -> None:
    """queue_depth > 5 for 3 s: fires once after 3 s of backlog, resolves when drained."""
    clock = FakeClock()
    rule = AlertRule("backlog", "queue_depth", ">", 5, for_s=3.0, severity=Severity.CRITICAL)
    cfg = EngineConfig(
        consumers=1, heartbeat_interval=0.5, heartbeat_timeout=2.0, alert_rules=(rule,), seed=1
    )

    async def h(d: Delivery) -> None:
        await clock.sleep(0.01)

    async with Engine(cfg, handler=h, clock=clock) as engine:
        await engine.pause()
        for i in range(10):
            await engine.publish({"i": i})
        await clock.advance(2.0)
        assert not engine.alerts.is_active("backlog")  # not yet held for 3 s
        await clock.advance(1.6)
        firing = [a for a in engine.snapshot().alerts if a.name == "backlog"]
        assert [(a.state, a.severity) for a in firing] == [("firing", "critical")]
        await clock.advance(5.0)  # still true: no second alert
        assert len([a for a in engine.snapshot().alerts if a.name == "backlog"]) == 1
        await engine.resume()
        await clock.run_until(lambda: engine.snapshot().acked == 10)
        await clock.advance(1.0)
        states = [a.state for a in engine.snapshot().alerts if a.name == "backlog"]
    assert states == ["resolved"]


async def test_alert_can_be_acknowledged() -> None:
    """An operator acknowledges a firing alert; it stays visible as acknowledged."""
    clock = FakeClock()
    rule = AlertRule("any-backlog", "queue_depth", ">", 0)
    cfg = EngineConfig(
        consumers=1, heartbeat_interval=0.5, heartbeat_timeout=2.0, alert_rules=(rule,)
    )

    async def h(d: Delivery) -> None:
        return None

    async with Engine(cfg, handler=h, clock=clock) as engine:
        await engine.pause()
        await engine.publish(b"x")
        await clock.advance(0.6)
        alert = next(a for a in engine.snapshot().alerts if a.name == "any-backlog")
        assert engine.acknowledge_alert(alert.id)
        again = next(a for a in engine.snapshot().alerts if a.name == "any-backlog")
        assert again.state == "acknowledged"
        await engine.resume()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(name="x", metric="queue_lenght", op=">", threshold=1), "unknown metric"),
        (dict(name="x", metric="queue_depth", op="=>", threshold=1), "unknown comparison"),
        (dict(name="x", metric="queue_depth", op=">", threshold=float("nan")), "finite"),
        (dict(name="x", metric="queue_depth", op=">", threshold=1, for_s=-1), "'for'"),
        (
            dict(name="x", metric="queue_depth", op=">", threshold=1, severity="loud"),
            "unknown severity",
        ),
    ],
)
def test_invalid_rule_is_a_clear_error(kwargs: dict[str, object], needle: str) -> None:
    """Each bad field is named in the error."""
    with pytest.raises(RuleError, match=needle):
        AlertRule(**kwargs)  # type: ignore[arg-type]


async def test_dlq_growing_alert_says_its_number_is_new_dead_letters_not_the_dlq_size() -> None:
    """A second wave of dead letters fires `dlq-growing` with the growth (1) while the
    DLQ holds 4: the text labels the number as new in the last 10 s, so the operator
    does not read it as the DLQ's size."""
    clock = FakeClock()
    cfg = EngineConfig(consumers=1, max_attempts=1, heartbeat_interval=0.5, seed=1)

    async def h(d: Delivery) -> None:
        raise ValueError("no")

    async with Engine(cfg, handler=h, clock=clock) as engine:
        for i in range(3):
            await engine.publish({"i": i})
        await clock.run_until(lambda: engine.snapshot().queue.dead == 3)
        await clock.advance(15.0)  # the first wave is older than the 10 s window
        await engine.publish({"i": 3})
        await clock.run_until(lambda: engine.snapshot().queue.dead == 4)
        await clock.advance(1.0)
        [alert] = [
            a for a in engine.snapshot().alerts if a.name == "dlq-growing" and a.state == "firing"
        ]
    assert alert.message == "DLQ grew by 1 in 10 s"
