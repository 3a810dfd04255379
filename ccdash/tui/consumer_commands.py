"""The operator's commands on consumers and the pool: kill, hang, slow, weight, scale,
balancer, autoscaler, and draining another worker of the fleet."""

from __future__ import annotations

from ccdash.engine import BALANCERS
from ccdash.text import counted
from ccdash.tui.command_base import CommandBase, guarded
from ccdash.tui.picker import Picker
from ccdash.tui.prompt import Prompt


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


class ConsumerCommands(CommandBase):
    """Keys that act on the selected consumer, its worker, or the pool."""

    @guarded
    async def action_kill(self) -> None:
        """Crash the selected consumer (another worker's: through the control channel,
        after asking). The cursor stays on it: a second `k` never hits a neighbour."""
        cid = self._selected("kill")
        if (target := self._remote(cid)) is not None:
            worker, rcid = target
            self.ask_then_send(
                f"Kill {rcid} on worker {worker.name}? (another process: it is replaced there)",
                f"kill {cid}",
                worker.name,
                "kill",
                consumer=rcid,
            )
        elif cid:
            self.consumers.select_key(cid)  # its row, by key, whatever moves around it
            released = await self.engine.kill_consumer(cid)
            self.say(f"killed {cid}; {counted(released, 'lease')} went back to the queue")

    @guarded
    def action_drain_worker(self) -> None:
        """Drain the selected consumer's worker (another worker of the fleet), after asking."""
        cid = self._selected("drain")
        if cid is None:
            return
        if (target := self._remote(cid)) is None:
            self.say(
                "drain: select another worker's consumer (worker/cid); q stops this one gracefully",
                error=True,
            )
            return
        name = target[0].name
        self.ask_then_send(
            f"Drain worker {name}? It finishes what it holds, hands back the rest and exits.",
            f"drain {name}",
            name,
            "drain",
        )

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
            self.ask_then_send(
                f"Scale worker {worker.name} from {worker.concurrency} to {n} "
                "consumers? (another process)",
                f"scale {worker.name} {worker.concurrency} -> {n}",
                worker.name,
                "scale",
                n=n,
            )
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
