"""The consumer engine. Never imports textual or rich."""

from ccdash.brokers.base import Delivery
from ccdash.engine.config import ConfigError, EngineConfig
from ccdash.engine.engine import Engine, EngineStopped
from ccdash.engine.snapshot import Snapshot

__all__ = ["ConfigError", "Delivery", "Engine", "EngineConfig", "EngineStopped", "Snapshot"]
