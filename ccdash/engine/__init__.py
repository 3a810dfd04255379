"""The consumer engine. Never imports textual, rich, scenario, fleet or tui."""

from ccdash.brokers.base import Delivery
from ccdash.engine.balancers import BALANCERS
from ccdash.engine.config import ConfigError, EngineConfig
from ccdash.engine.consumer_context import BatchHandler, Handler
from ccdash.engine.engine import Engine, EngineStopped
from ccdash.engine.events import (
    ALERT_EVENTS,
    DRILL_EVENTS,
    DrillEvent,
    Event,
    EventKind,
    Kind,
    Level,
    level_of,
)
from ccdash.engine.pool import next_version
from ccdash.engine.snapshot import Snapshot
from ccdash.engine.states import ENDED_STATES, LIVE_STATES, AlertState, ConsumerState, Severity
from ccdash.engine.tasks import BROKER_CLOSE_DEADLINE

__all__ = [
    "ALERT_EVENTS",
    "BALANCERS",
    "BROKER_CLOSE_DEADLINE",
    "ENDED_STATES",
    "LIVE_STATES",
    "AlertState",
    "BatchHandler",
    "ConfigError",
    "ConsumerState",
    "DRILL_EVENTS",
    "Delivery",
    "DrillEvent",
    "Engine",
    "EngineConfig",
    "EngineStopped",
    "Event",
    "EventKind",
    "Handler",
    "Kind",
    "Level",
    "Severity",
    "Snapshot",
    "level_of",
    "next_version",
]
