"""The engine's typed vocabulary: states, severities and event kinds with their log levels."""

from __future__ import annotations

import pytest

from ccdash.clock import FakeClock
from ccdash.engine import (
    ENDED_STATES,
    LIVE_STATES,
    ConsumerState,
    Engine,
    EngineConfig,
    Event,
    EventKind,
    Level,
    Severity,
    level_of,
)
from ccdash.engine.events import Kind
from ccdash.engine.rules import AlertRule
from ccdash.engine.states import BreakerState, ScaleReason
from ccdash.ops.logfile import event_record
from ccdash.scenario.drill_record import DrillEvent


def test_every_event_kind_carries_a_level() -> None:
    """Each engine and drill event kind has a log level of its own and says what happened."""
    for kind in [*EventKind, *DrillEvent]:
        assert isinstance(kind.level, Level) and kind.doc, kind


@pytest.mark.parametrize(
    ("kind", "level"),
    [
        ("consumer-failed", "error"),
        ("restart-limit", "error"),
        ("consumer-hung", "warning"),
        ("dead-lettered", "warning"),
        ("lease-expired", "warning"),
        ("ack-rejected", "warning"),
        ("breaker-opened", "warning"),
        ("scale-held", "warning"),
        ("undecodable", "warning"),
        ("loop-stalled", "warning"),
        ("engine-started", "info"),
        ("pool-scaled", "info"),
        ("alert-resolved", "info"),
        ("drill-fired", "warning"),
        ("drill-pass", "warning"),
    ],
)
def test_log_lines_carry_the_kinds_level(kind: str, level: str) -> None:
    """The JSON log files an event at its kind's level, whether the event holds the member
    or (read back from a recording) only its text."""
    member: Kind = EventKind(kind) if kind in EventKind._value2member_map_ else DrillEvent(kind)
    for k in (member, kind if isinstance(member, EventKind) else member):
        assert event_record(Event(1, 0.0, k, "m"))["level"] == level


def test_a_critical_alert_firing_is_an_error() -> None:
    """alert-firing is a warning, raised to an error when the alert is critical."""
    assert level_of(EventKind.ALERT_FIRING, {"severity": Severity.WARNING}) == Level.WARNING
    assert level_of(EventKind.ALERT_FIRING, {"severity": "critical"}) == Level.ERROR


def test_states_are_members_that_read_as_their_words() -> None:
    """Snapshot states are ConsumerState members equal to the plain words; the groups
    split them into live and ended."""
    idle: str = ConsumerState.IDLE  # as any caller holding a plain str sees it
    assert idle == "idle" and "processing" in LIVE_STATES
    assert LIVE_STATES.isdisjoint(ENDED_STATES)
    assert set(ConsumerState) == LIVE_STATES | ENDED_STATES | {ConsumerState.DRAINING}


async def test_engine_events_and_states_are_typed() -> None:
    """What the engine reports uses the vocabulary: event kinds and consumer states are
    members, not bare strings."""
    clock = FakeClock()

    async def ok(_: object) -> None:
        return None

    async with Engine(EngineConfig(consumers=2), handler=ok, clock=clock) as engine:
        await engine.kill_consumer("c1")
        snap = engine.snapshot()
    assert all(isinstance(e.kind, EventKind) for e in engine.events)
    assert {type(c.state) for c in snap.consumers} == {ConsumerState}
    assert any(a.severity is Severity.WARNING for a in snap.alerts)


def test_a_rule_severity_given_as_text_becomes_the_member() -> None:
    """A scenario file's severity text is checked and stored as a Severity."""
    rule = AlertRule("x", "queue_depth", ">", 1, severity="critical")  # type: ignore[arg-type]
    assert rule.severity is Severity.CRITICAL


async def test_autoscaler_reasons_and_breaker_states_are_typed() -> None:
    """An autoscaler decision names its reason, and a breaker its state, as members."""
    from ccdash.engine.guards import CircuitBreaker

    clock = FakeClock()

    async def ok(_: object) -> None:
        return None

    async with Engine(EngineConfig(consumers=1, autoscale=True), handler=ok, clock=clock) as engine:
        decision = await engine.autoscaler.tick(clock.now())
    assert decision is not None and isinstance(decision.reason, ScaleReason)
    breaker = CircuitBreaker(1, 5.0)
    breaker.failure(0.0)
    assert breaker.state is BreakerState.OPEN
