"""Alerts: fire, resolve, acknowledge; a bounded newest-first history."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from ccdash.engine.states import AlertState, Severity


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert occurrence. `key` tells apart alerts of one name (e.g. per consumer)."""

    id: int
    name: str
    key: str
    severity: Severity
    message: str
    state: AlertState
    fired_at: float
    resolved_at: float | None = None
    count: int = 1  # how many times it re-fired while already firing (de-duplicated)


class AlertBook:
    """Alerts by (name, key): firing ones are de-duplicated; history is bounded."""

    def __init__(
        self,
        now: Callable[[], float],
        on_change: Callable[[Alert], None] | None = None,
        history: int = 200,
    ) -> None:
        self._now = now
        self._on_change = on_change
        self._ids = itertools.count(1)
        self._active: dict[tuple[str, str], Alert] = {}
        self._history: deque[Alert] = deque(maxlen=history)  # ended alerts, oldest first

    def fire(self, name: str, severity: Severity, message: str, key: str = "") -> Alert:
        """Raise an alert, or bump the count of the same one already firing."""
        current = self._active.get((name, key))
        if current is not None and current.state != AlertState.RESOLVED:
            alert = replace(current, count=current.count + 1, message=message)
        else:
            alert = Alert(
                next(self._ids), name, key, severity, message, AlertState.FIRING, self._now()
            )
        self._active[(name, key)] = alert
        if self._on_change and (current is None or current.state == AlertState.RESOLVED):
            self._on_change(alert)
        return alert

    def resolve(self, name: str, key: str = "") -> Alert | None:
        """Mark a firing (or acknowledged) alert resolved; it moves to the history."""
        current = self._active.pop((name, key), None)
        if current is None:
            return None
        alert = replace(current, state=AlertState.RESOLVED, resolved_at=self._now())
        self._history.append(alert)
        if self._on_change:
            self._on_change(alert)
        return alert

    def acknowledge(self, alert_id: int) -> bool:
        """An operator has seen it: it stays active (until resolved) but is acknowledged."""
        for k, a in self._active.items():
            if a.id == alert_id and a.state == AlertState.FIRING:
                self._active[k] = replace(a, state=AlertState.ACKNOWLEDGED)
                return True
        return False

    def is_active(self, name: str, key: str = "") -> bool:
        """Whether this alert is firing or acknowledged now."""
        return (name, key) in self._active

    def active_keys(self, name: str) -> list[str]:
        """Keys of the active alerts of one name."""
        return [k for (n, k) in self._active if n == name]

    def view(self, limit: int = 50) -> tuple[Alert, ...]:
        """Active alerts then the history, newest first, at most `limit`."""
        active = sorted(self._active.values(), key=lambda a: a.id, reverse=True)
        out = active + list(reversed(self._history))
        return tuple(out[:limit])

    def all(self) -> list[Alert]:
        """Every alert still known, oldest first (for reports)."""
        return sorted([*self._history, *self._active.values()], key=lambda a: a.id)
