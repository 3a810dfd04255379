"""The operator's commands on the workload: drills, bursts, poison messages, a rolling
update, and pausing consumption."""

from __future__ import annotations

from typing import Any

from ccdash.engine import BALANCERS
from ccdash.scenario.drill_record import Verdict
from ccdash.tui.command_base import CommandBase, guarded
from ccdash.tui.picker import Picker


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


class WorkloadCommands(CommandBase):
    """Keys that add load, run a drill, or pause consumption."""

    @guarded
    async def action_rolling_update(self) -> None:
        """Roll every consumer onto the next handler version, as the `rolling-update` drill
        does (the drill report pane follows it to the end)."""
        records = getattr(self.workload, "drill_results", None) or ()
        if any(
            getattr(r, "action", "") == "rolling-update"
            and getattr(r, "verdict", "") == Verdict.PENDING
            for r in records
        ):
            self.say("a rolling update is already under way", error=True)
            return
        rec = await self.workload.trigger_drill("rolling-update")
        if getattr(rec, "verdict", "") == Verdict.SKIPPED:
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
