"""ccdash: a competing-consumer engine and its live terminal dashboard."""

from ccdash.brokers.base import Delivery, PayloadTooLarge
from ccdash.engine import ConfigError, Engine, EngineConfig, EngineStopped, Snapshot

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Delivery",
    "Engine",
    "EngineConfig",
    "EngineStopped",
    "PayloadTooLarge",
    "Snapshot",
    "__version__",
]
