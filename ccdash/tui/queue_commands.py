"""The operator's commands on the dead-letter queue and the alerts: redrive, purge,
group by error, acknowledge."""

from __future__ import annotations

from ccdash.text import counted
from ccdash.tui.command_base import CommandBase, guarded
from ccdash.tui.confirm import Confirm


class QueueCommands(CommandBase):
    """Keys on the dead letters (selected, grouped or all) and the firing alerts."""

    def _dlq_targets(self) -> tuple[list[str] | None, str, bool]:
        """Selected message / group when the DLQ pane has focus; else all: the ids in the
        DLQ now when the broker lists them all (so a yes acts on what was asked about,
        not on what arrived meanwhile), None when it lists only the newest. Also whether
        it is one message picked by the operator."""
        if self.dead.has_focus:
            ids = self.dead.selected_ids()
            if ids:
                if not self.dead.grouped:
                    return ids, f"dead letter {ids[0]}", True
                return ids, f"{counted(len(ids), 'dead letter')} of the selected error", False
        snap = self.engine.snapshot(max_leases=0, max_dead=100_000)
        n = snap.queue.dead
        listed = [d.message_id for d in snap.dead_letters]
        return (listed if len(listed) == n else None), f"all {counted(n, 'dead letter')}", False

    def _dlq_command(self, verb: str) -> None:
        ids, what, one = self._dlq_targets()
        if ids == []:
            self.say(f"{verb}: the DLQ is empty")
            return

        async def run(yes: bool | None) -> None:
            if not yes:
                self.say(f"{verb} cancelled")
                return
            if verb == "redrive":
                n = await self.engine.redrive(ids)
            else:
                n = await self.engine.purge_dead(ids)
            done = "put back" if verb == "redrive" else "deleted"
            self.say(f"{verb}: {counted(n, 'dead letter')} {done}")

        if one and verb == "redrive":  # a delete always asks
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
