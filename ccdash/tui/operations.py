"""The operator's commands: what each key does to the engine and the workload.

The base class of the dashboard app (which adds layout, the engine worker and
the refresh), so every `action_*` stays a plain Textual action: bindings, the
command palette and Pilot all reach it. Each command is confirmed in the log
and refreshes the panes at once.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from textual.app import App
from textual.worker import Worker

from ccdash.engine import BALANCERS, Engine
from ccdash.fleet import CommandResult, WorkerView
from ccdash.tui.alerts_table import AlertsTable
from ccdash.tui.confirm import Confirm
from ccdash.tui.consumer_table import ConsumerTable
from ccdash.tui.dead_letters import DeadLetterTable
from ccdash.tui.fleet_feed import FleetFeed, FleetRefused, describe
from ccdash.tui.format import Palette
from ccdash.tui.help_screen import HelpScreen
from ccdash.tui.keys import MUTATING_ACTIONS
from ccdash.tui.log_pane import LogPane
from ccdash.tui.picker import Picker
from ccdash.tui.prompt import Prompt

F = TypeVar("F", bound=Callable[..., Any])


def guarded(fn: F) -> F:
    """Run a command; a failure (consumer gone, engine stopped) is logged, never fatal.
    In read-only mode a command that would change something is refused, with one line."""
    name = fn.__name__.removeprefix("action_")

    @functools.wraps(fn)
    async def wrapper(self: Any, *args: Any) -> None:
        if name in MUTATING_ACTIONS and getattr(self, "read_only", False):
            self.say(f"read-only: {name.replace('_', ' ')} refused (the dashboard was "
                     "started with --read-only)", error=True)
            return
        try:
            result = fn(self, *args)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - shown to the operator instead
            self.say(f"{fn.__name__.removeprefix('action_')} failed: {exc}", error=True)

    return wrapper  # type: ignore[return-value]


def _check_weight(text: str) -> str | None:
    try:
        w = int(text)
    except ValueError:
        return "a whole number, 0 to 100"
    return None if 0 <= w <= 100 else "a whole number, 0 to 100"


def _check_factor(text: str) -> str | None:
    try:
        f = float(text)
    except ValueError:
        return "a number from 1 (normal speed) to 100"
    return None if 1.0 <= f <= 100.0 else "a number from 1 (normal speed) to 100"


def drill_choices(
    available: list[Any], *, selected: str | None, desired: int, balancer: str, burst: int
) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, action, params) for each drill the workload offers.

    Built-in actions aim at the selected consumer (else the busiest) and get
    sensible parameters; the scenario's own drills keep their target.
    """
    target = selected or "busiest"
    nxt = (
        BALANCERS[(BALANCERS.index(balancer) + 1) % len(BALANCERS)]
        if balancer in BALANCERS
        else BALANCERS[0]
    )
    builtin: dict[str, tuple[str, dict[str, Any]]] = {
        "kill": (f"kill {target}", {"target": target}),
        "hang": (f"hang {target}", {"target": target}),
        "slow": (f"slow {target} x4 for 10 s", {"target": target, "factor": 4.0, "for": 10.0}),
        "poison": ("poison: 5 messages that always fail", {"count": 5}),
        "burst": (f"burst: {burst} messages at once", {"count": burst}),
        "scale": (f"scale the pool to {desired + 1}", {"to": desired + 1}),
        "balancer": (f"balancer -> {nxt}", {"balancer": nxt}),
        "rolling-update": ("rolling update of every consumer", {}),
    }
    out = []
    for entry in available:
        name = str(getattr(entry, "label", entry))
        if name in builtin:
            label, params = builtin[name]
            out.append((label, name, params))
        else:
            out.append((f"{name} (scenario drill)", name, {}))
    return out


class Operations(App[int]):
    """Keyboard actions on the engine and the workload (and the rest of a Redis fleet)."""

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
        log.add(clock.now(), "error" if error else "operator", message, operator=not error)
        log.flush()
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
            except Exception as exc:  # noqa: BLE001 - shown to the operator instead
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
            self.say(f"{verb}: {cid} runs on another worker; the fleet takes kill (k), "
                     "scale (+/-) and drain (D)", error=True)
            return None
        return cid

    def _remote(self, cid: str | None) -> tuple[WorkerView, str] | None:
        return None if cid is None or self.fleet is None else self.fleet.owner(cid)

    def send_to_fleet(self, worker: str, action: str, **args: Any) -> Worker[Any]:
        """Send a signed command in the background (the answer can take seconds)."""
        return self.run_worker(self.fleet_command(worker, action, **args), group="commands",
                               name=f"{action} on {worker}", exit_on_error=False)

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

    def ask_then_send(self, question: str, what: str, worker: str, action: str,
                      **args: Any) -> None:
        """An action on another worker of the fleet: ask first, then send it signed."""

        def done(yes: bool | None) -> None:
            if not yes:
                self.say(f"{what}: cancelled")
                return
            self.say(f"{what}: signed command sent to {worker}")
            self.send_to_fleet(worker, action, **args)

        self.push_screen(Confirm(question), self.guard(done))

    @guarded
    async def action_kill(self) -> None:
        """Crash the selected consumer (another worker's: through the control channel,
        after asking). The cursor stays on it: a second `k` never hits a neighbour."""
        cid = self._selected("kill")
        if (target := self._remote(cid)) is not None:
            worker, rcid = target
            self.ask_then_send(f"Kill {rcid} on worker {worker.name}? (another process: it "
                               "is replaced there)", f"kill {cid}", worker.name, "kill",
                               consumer=rcid)
        elif cid:
            self.consumers.select_key(cid)  # its row, by key, whatever moves around it
            released = await self.engine.kill_consumer(cid)
            self.say(f"killed {cid}; {released} leases went back to the queue")

    @guarded
    def action_drain_worker(self) -> None:
        """Drain the selected consumer's worker (another worker of the fleet), after asking."""
        cid = self._selected("drain")
        if cid is None:
            return
        if (target := self._remote(cid)) is None:
            self.say("drain: select another worker's consumer (worker/cid); q stops this "
                     "one gracefully", error=True)
            return
        name = target[0].name
        self.ask_then_send(f"Drain worker {name}? It finishes what it holds, hands back the "
                           "rest and exits.", f"drain {name}", name, "drain")

    @guarded
    async def action_hang(self) -> None:
        """Stall the selected consumer (heartbeats stop)."""
        if cid := self._local("hang"):
            await self.engine.hang_consumer(cid)
            self.say(
                f"hung {cid}; the health check should fail it within "
                f"{self.engine.config.heartbeat_timeout:g}s"
            )

    @guarded
    def action_slow(self) -> None:
        """Ask for a slow-down factor for the selected consumer."""
        cid = self._local("slow")
        if cid is None:
            return

        def done(value: str | None) -> None:
            if value is not None:
                self.engine.slow_consumer(cid, float(value))
                self.say(f"slowed {cid} x{float(value):g}")

        self.push_screen(
            Prompt(f"Slow {cid} down by what factor? (1 = normal)", "4", _check_factor),
            self.guard(done),
        )

    @guarded
    def action_weight(self) -> None:
        """Ask for the selected consumer's weight."""
        cid = self._local("weight")
        if cid is None:
            return

        def done(value: str | None) -> None:
            if value is not None:
                self.engine.set_weight(cid, int(value))
                hint = (
                    ""
                    if self.engine.balancer.name == "weighted"
                    else (" (takes effect under the weighted balancer: press b)")
                )
                self.say(f"{cid} weight set to {int(value)}{hint}")

        self.push_screen(Prompt(f"Weight of {cid} (0-100)", "2", _check_weight), self.guard(done))

    @guarded
    async def action_scale(self, delta: int) -> None:
        """One consumer more or fewer: here, or on the selected consumer's worker."""
        if (target := self._remote(self.consumers.selected_consumer())) is not None:
            worker = target[0]
            n = max(0, worker.concurrency + delta)
            self.ask_then_send(f"Scale worker {worker.name} from {worker.concurrency} to {n} "
                               "consumers? (another process)",
                               f"scale {worker.name} {worker.concurrency} -> {n}",
                               worker.name, "scale", n=n)
            return
        before = self.engine.desired
        n = await self.engine.scale_to(before + delta)
        if n == before:
            cfg = self.engine.config
            self.say(
                f"pool stays at {n} (limits {cfg.min_consumers}..{cfg.max_consumers})", error=True
            )
        else:
            self.say(f"scaled the pool {before} -> {n}")

    @guarded
    def action_balancer(self) -> None:
        """Pick a balancer."""
        current = self.engine.balancer.name

        def done(name: str | None) -> None:
            if name is not None and name != current:
                self.engine.set_balancer(name)
                self.say(f"balancer switched to {name}")

        self.push_screen(Picker("Balancer", [(b, b) for b in BALANCERS], current), self.guard(done))

    @guarded
    def action_autoscale(self) -> None:
        """Let the autoscaler resize the pool, or hand sizing back to the operator."""
        on = not self.engine.autoscale
        self.engine.set_autoscale(on)
        cfg = self.engine.config
        self.say(
            f"autoscaler on: it sizes the pool within {cfg.min_consumers}..{cfg.max_consumers}"
            if on
            else "autoscaler off: the pool stays as it is"
        )

    @guarded
    async def action_rolling_update(self) -> None:
        """Roll every consumer onto the next handler version, as the `rolling-update` drill
        does (the drill report pane follows it to the end)."""
        records = getattr(self.workload, "drill_results", None) or ()
        if any(
            getattr(r, "action", "") == "rolling-update" and getattr(r, "verdict", "") == "pending"
            for r in records
        ):
            self.say("a rolling update is already under way", error=True)
            return
        rec = await self.workload.trigger_drill("rolling-update")
        if getattr(rec, "verdict", "") == "skipped":
            self.say(f"rolling update not started: {rec.detail}", error=True)
        else:
            self.say(
                f"{getattr(rec, 'detail', '') or 'rolling update'}: one consumer at a "
                "time is started, then its predecessor drains"
            )

    @guarded
    async def action_burst(self) -> None:
        """Publish a burst of load."""
        await self.workload.inject_burst(self.burst_size)
        self.say(f"injected a burst of {self.burst_size} messages")

    @guarded
    async def action_poison(self) -> None:
        """Publish one message that always fails."""
        await self.workload.inject_poison(1)
        self.say(
            "injected a poison message; it will be dead-lettered after "
            f"{self.engine.config.max_attempts} attempts"
        )

    @guarded
    async def action_pause(self) -> None:
        """Pause or resume consumption."""
        if self.engine.paused:
            await self.engine.resume()
            self.say("consumption resumed")
        else:
            await self.engine.pause()
            self.say("consumption paused; publishing continues, the backlog will grow")

    def _dlq_targets(self, verb: str) -> tuple[list[str] | None, str]:
        """Selected message / group when the DLQ pane has focus; else all (None)."""
        if self.dead.has_focus:
            ids = self.dead.selected_ids()
            if ids:
                what = (
                    f"{len(ids)} dead letters of the selected error"
                    if self.dead.grouped
                    else f"dead letter {ids[0]}"
                )
                return ids, what
        return None, f"all {self.engine.snapshot(max_leases=0, max_dead=0).queue.dead} dead letters"

    def _dlq_command(self, verb: str) -> None:
        ids, what = self._dlq_targets(verb)

        async def run(yes: bool | None) -> None:
            if not yes:
                self.say(f"{verb} cancelled")
                return
            if verb == "redrive":
                n = await self.engine.redrive(ids)
            else:
                n = await self.engine.purge_dead(ids)
            self.say(f"{verb}: {n} dead letters {'put back' if verb == 'redrive' else 'deleted'}")

        if ids is not None and len(ids) == 1 and verb == "redrive":  # a delete always asks
            self.run_worker(self.guard(run)(True), group="commands", exit_on_error=False)
        else:
            self.push_screen(Confirm(f"{verb.capitalize()} {what}?"), self.guard(run))

    @guarded
    def action_redrive(self) -> None:
        """Redrive the selected dead letter / error group, or all (after asking)."""
        self._dlq_command("redrive")

    @guarded
    def action_purge(self) -> None:
        """Purge the selected dead letter / error group, or all (after asking)."""
        self._dlq_command("purge")

    @guarded
    def action_group(self) -> None:
        """Toggle the DLQ's by-error view."""
        grouped = self.dead.toggle_grouped()
        self.say("dead letters grouped by error" if grouped else "dead letters listed")

    @guarded
    def action_ack_alert(self) -> None:
        """Acknowledge the selected (or newest) firing alert."""
        aid = self.alerts.selected_alert() if self.alerts.has_focus else None
        aid = aid if aid is not None else self.alerts.newest_firing()
        if aid is None:
            self.say("no firing alert to acknowledge", error=True)
        elif self.engine.acknowledge_alert(aid):
            self.say(f"alert {aid} acknowledged")

    @guarded
    def action_drill(self) -> None:
        """Pick a drill (the scenario's or a built-in one) and run it; the report pane shows it."""
        choices = drill_choices(
            list(self.workload.available_drills()),
            selected=self.consumers.selected_consumer(),
            desired=self.engine.desired,
            balancer=self.engine.balancer.name,
            burst=self.burst_size,
        )

        def done(index: str | None) -> None:
            if index is None:
                return
            label, action, params = choices[int(index)]
            self.say(f"drill started: {label}")
            self.run_worker(
                self.workload.trigger_drill(action, **params),
                group="drills",
                exit_on_error=False,
                name=f"drill {label}",
            )

        self.push_screen(
            Picker("Run a drill", [(str(i), c[0]) for i, c in enumerate(choices)]), self.guard(done)
        )

    @guarded
    def action_help(self) -> None:
        """Show the key table."""
        self.push_screen(HelpScreen(self.palette))
