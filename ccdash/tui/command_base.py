"""The base of the operator's commands: the guard every command runs under, the log
line that confirms it, the panes it reads its selection from, and the signed commands
sent to another worker of a Redis fleet.

The command classes (consumer_commands, workload_commands, queue_commands) extend it;
`Operations` joins them into the dashboard app's base.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from textual.app import App
from textual.worker import Worker

from ccdash.engine import Engine
from ccdash.fleet import CommandResult, WorkerView
from ccdash.record.kinds import OperatorEvent
from ccdash.text import sanitize
from ccdash.tui.alerts_table import AlertsTable
from ccdash.tui.confirm import Confirm
from ccdash.tui.consumer_table import ConsumerTable
from ccdash.tui.dead_letters import DeadLetterTable
from ccdash.tui.fleet_feed import FleetFeed, FleetRefused, describe
from ccdash.tui.format import Palette
from ccdash.tui.keys import MUTATING_ACTIONS
from ccdash.tui.log_pane import LogPane

F = TypeVar("F", bound=Callable[..., Any])


def guarded(fn: F) -> F:
    """Run a command; a failure (consumer gone, engine stopped) is logged, never fatal.
    In read-only mode a command that would change something is refused, with one line."""
    name = fn.__name__.removeprefix("action_")

    @functools.wraps(fn)
    async def wrapper(self: Any, *args: Any) -> None:
        if name in MUTATING_ACTIONS and getattr(self, "read_only", False):
            self.say(
                f"read-only: {name.replace('_', ' ')} refused (the dashboard was "
                "started with --read-only)",
                error=True,
            )
            return
        try:
            result = fn(self, *args)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # shown to the operator instead
            self.say(f"{fn.__name__.removeprefix('action_')} failed: {exc}", error=True)

    return wrapper  # type: ignore[return-value]


class CommandBase(App[int]):
    """What every operator command stands on: the engine, the log, the panes, the fleet."""

    engine: Engine
    fleet: FleetFeed | None = None
    workload: Any  # ccdash.scenario.Workload, or anything shaped like it
    burst_size: int
    palette: Palette

    def refresh_now(self) -> None:
        """Pull a snapshot into the panes (the app implements it)."""
        raise NotImplementedError

    def say(self, message: str, *, error: bool = False) -> None:
        """Confirm an operator action (or say why not) in the log, and refresh."""
        clock = self.engine.clock
        log = self.query_one(LogPane)
        log.add(clock.now(), OperatorEvent.of(error), message, operator=not error)
        log.flush()
        if error and not log.display:  # a small terminal hides the log: a refusal shows anyway
            self.notify(sanitize(message, 300), severity="error", markup=False)
        self.refresh_now()

    @property
    def consumers(self) -> ConsumerTable:
        """The consumers pane."""
        return self.query_one(ConsumerTable)

    @property
    def dead(self) -> DeadLetterTable:
        """The dead-letter pane."""
        return self.query_one(DeadLetterTable)

    @property
    def alerts(self) -> AlertsTable:
        """The alerts pane."""
        return self.query_one(AlertsTable)

    def guard(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Wrap a dialog callback like `guarded` wraps an action."""

        async def run(result: Any) -> None:
            try:
                out = fn(result)
                if inspect.isawaitable(out):
                    await out
            except Exception as exc:  # shown to the operator instead
                self.say(f"command failed: {exc}", error=True)

        return run

    def _selected(self, verb: str) -> str | None:
        cid = self.consumers.selected_consumer()
        if cid is None:
            self.say(f"{verb}: select a running consumer in the Consumers pane first", error=True)
        return cid

    def _local(self, verb: str) -> str | None:
        """The selected consumer, if it is this process's own (not another worker's)."""
        cid = self._selected(verb)
        if cid is not None and self.fleet is not None and self.fleet.owner(cid) is not None:
            self.say(
                f"{verb}: {cid} runs on another worker; the fleet takes kill (k), "
                "scale (+/-) and drain (D)",
                error=True,
            )
            return None
        return cid

    def _remote(self, cid: str | None) -> tuple[WorkerView, str] | None:
        return None if cid is None or self.fleet is None else self.fleet.owner(cid)

    def send_to_fleet(self, worker: str, action: str, **args: Any) -> Worker[Any]:
        """Send a signed command in the background (the answer can take seconds)."""
        return self.run_worker(
            self.fleet_command(worker, action, **args),
            group="commands",
            name=f"{action} on {worker}",
            exit_on_error=False,
        )

    async def fleet_command(self, worker: str, action: str, **args: Any) -> CommandResult | None:
        """Send `action` to another worker of the fleet; its answer goes to the log.
        Without a control secret nothing is sent: the log says why."""
        assert self.fleet is not None
        try:
            result = await self.fleet.command(worker, action, **args)
        except FleetRefused as exc:
            self.say(f"{action} on {worker} not sent: {exc}", error=True)
            return None
        text, bad = describe(result)
        self.say(text, error=bad)
        return result

    def ask_then_send(
        self, question: str, what: str, worker: str, action: str, **args: Any
    ) -> None:
        """An action on another worker of the fleet: ask first, then send it signed."""

        def done(yes: bool | None) -> None:
            if not yes:
                self.say(f"{what}: cancelled")
                return
            self.say(f"{what}: signed command sent to {worker}")
            self.send_to_fleet(worker, action, **args)

        self.push_screen(Confirm(question), self.guard(done))
