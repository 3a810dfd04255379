"""The engine's typed vocabulary: states, severities and event kinds with their log levels."""

from __future__ import annotations

import ast
from collections import Counter
from enum import StrEnum
from pathlib import Path

import pytest

from ccdash.clock import FakeClock
from ccdash.engine import (
    ENDED_STATES,
    LIVE_STATES,
    AlertState,
    ConsumerState,
    DrillEvent,
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
from ccdash.record.kinds import OperatorEvent
from ccdash.scenario.drill_record import Verdict
from ccdash.scenario.run_events import RunEvent
from ccdash.tui.log_pane import DashboardEvent


def test_every_event_kind_carries_a_level() -> None:
    """Each event kind (engine, drills, the run, operator and dashboard lines) has a log
    level of its own and says what happened."""
    for kind in [*EventKind, *DrillEvent, *RunEvent, *OperatorEvent, *DashboardEvent]:
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


# -- no bare words of the vocabulary -----------------------------------------------------

PACKAGE = Path(__file__).resolve().parents[1] / "ccdash"
# The vocabularies whose words must not be matched as bare strings. Their text is
# specific enough to tell; the dashboard's own line kinds ("log", "error", ...) and the
# run's and workers' phases ("running", "done", ...) are typed too, but their words are
# everyday ones used in other senses (JSON fields, CSS), so they are not scanned.
SCANNED: tuple[type[StrEnum], ...] = (
    ConsumerState,
    AlertState,
    Severity,
    Verdict,
    EventKind,
    DrillEvent,
    RunEvent,
)


def _vocabulary() -> dict[str, set[str]]:
    """Each scanned word -> the names of the vocabularies it belongs to."""
    words: dict[str, set[str]] = {}
    for enum in SCANNED:
        for member in enum:
            words.setdefault(member.value, set()).add(enum.__name__)
    return words


WORDS = _vocabulary()
PREFIXES = {w[: w.index("-") + 1] for w in WORDS if "-" in w}  # families: "alert-", ...


def _words_in(node: ast.AST) -> list[tuple[str, ast.Constant]]:
    """The scanned words a node is, or holds as a literal tuple / list / set."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return [
        (i.value, i)
        for i in items
        if isinstance(i, ast.Constant) and isinstance(i.value, str) and i.value in WORDS
    ]


def _one_vocabulary(found: list[tuple[str, ast.Constant]]) -> bool:
    """Two or more of the words are of one vocabulary: a table over it."""
    per = Counter(name for word, _ in found for name in WORDS[word])
    return any(n >= 2 for n in per.values())


def bare_words(source: str, where: str) -> list[str]:
    """Words of the scanned vocabularies written as bare strings where they are matched:
    compared (==, !=, in), matched as a prefix (startswith), as a `case`, or as the keys
    or members of a literal table over one vocabulary. An enum's own definition is
    exempt: that is where the words are written once."""
    tree = ast.parse(source)
    exempt: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
            isinstance(b, ast.Name) and (b.id == "Kind" or b.id.endswith("Enum"))
            for b in node.bases
        ):
            exempt.update(id(n) for n in ast.walk(node))
    hits: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in exempt:
            continue
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                hits += [(c.lineno, w) for w, c in _words_in(side)]
        elif isinstance(node, ast.match_case) and isinstance(node.pattern, ast.MatchValue):
            hits += [(c.lineno, w) for w, c in _words_in(node.pattern.value)]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith")
        ):
            for arg in node.args:
                items = arg.elts if isinstance(arg, ast.Tuple) else [arg]
                hits += [
                    (i.lineno, i.value)
                    for i in items
                    if isinstance(i, ast.Constant)
                    and isinstance(i.value, str)
                    and (i.value in WORDS or i.value in PREFIXES)
                ]
        elif isinstance(node, ast.Dict | ast.Set | ast.Tuple | ast.List):
            keys = node.keys if isinstance(node, ast.Dict) else node.elts
            found = [
                (k.value, k)
                for k in keys
                if isinstance(k, ast.Constant) and isinstance(k.value, str) and k.value in WORDS
            ]
            if _one_vocabulary(found):
                hits += [(c.lineno, w) for w, c in found]
    return [f"{where}:{line}: {word!r}" for line, word in sorted(set(hits))]


def test_the_scan_finds_bare_words() -> None:
    """Each way of matching a word by its text is found; an enum's definition, a word
    passed along and a lone word among other fields are not."""
    planted = """
class Phase(StrEnum):
    FIRING = "firing"
if a.state == "firing": pass
if kind in ("alert-firing", "x"): pass
if kind.startswith("drill-"): pass
match s:
    case "idle": pass
ROLES = {"critical": 1, "warning": 2}
emit("dead-lettered", "m")
FIELDS = ("id", "failed", "weight")
"""
    assert [h.split(": ", 1)[1] for h in bare_words(planted, "x")] == [
        "'firing'",
        "'alert-firing'",
        "'drill-'",
        "'idle'",
        "'critical'",
        "'warning'",
    ]


def test_no_bare_words_of_the_vocabulary() -> None:
    """Outside the enums that define them, states, severities, verdicts and event kinds
    are matched as members (or named groups of them), never as bare strings."""
    found = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        for hit in bare_words(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    ]
    assert found == []
