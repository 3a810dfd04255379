"""The operator's commands: what each key does to the engine and the workload.

The base class of the dashboard app (which adds layout, the engine worker and
the refresh), so every `action_*` stays a plain Textual action: bindings, the
command palette and Pilot all reach it. Each command is confirmed in the log
and refreshes the panes at once.

The commands live by what they act on: consumer_commands (consumers, the pool, a
fleet worker), workload_commands (load, drills, pause), queue_commands (dead letters,
alerts), all on command_base (the guard, the log line, the selection).
"""

from __future__ import annotations

from ccdash.tui.command_base import guarded
from ccdash.tui.consumer_commands import ConsumerCommands
from ccdash.tui.help_screen import HelpScreen
from ccdash.tui.queue_commands import QueueCommands
from ccdash.tui.workload_commands import WorkloadCommands


class Operations(ConsumerCommands, WorkloadCommands, QueueCommands):
    """Keyboard actions on the engine and the workload (and the rest of a Redis fleet)."""

    @guarded
    def action_help(self) -> None:
        """Show the key table."""
        self.push_screen(HelpScreen(self.palette))
