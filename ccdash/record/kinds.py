"""The kinds of line a recording adds to the engine's and the run's events: the
operator's commands as the dashboard confirmed (or refused) them."""

from __future__ import annotations

from ccdash.engine import Kind, Level


class OperatorEvent(Kind):
    """An operator's line in the dashboard's log and in a recording's timeline."""

    OPERATOR = "operator", Level.INFO, "an operator's command, as the dashboard confirmed it"
    ERROR = "error", Level.ERROR, "an operator's command the dashboard refused, and why"

    @classmethod
    def of(cls, error: bool) -> OperatorEvent:
        """The kind of a confirmation (`error`: a refusal)."""
        return cls.ERROR if error else cls.OPERATOR


OPERATOR_EVENTS = frozenset(OperatorEvent)

__all__ = ["OPERATOR_EVENTS", "OperatorEvent"]
