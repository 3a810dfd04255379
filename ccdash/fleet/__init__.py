"""The fleet: worker processes sharing one Redis broker, seen and steered from
anywhere.

    from ccdash.fleet import FleetView, send_command

    async with FleetView("redis://host:6379/0") as fleet:
        snap = await fleet.snapshot()           # workers, consumers, leases, DLQ, counts
    await send_command(url, secret, "worker-a", "kill", consumer="c2")
"""

from ccdash.fleet.connect import FleetConnectError
from ccdash.fleet.control import ACTIONS, CommandResult, ControlError, load_secret, send_command
from ccdash.fleet.view import FleetConsumer, FleetLease, FleetSnapshot, FleetView, WorkerView

__all__ = [
    "ACTIONS",
    "CommandResult",
    "ControlError",
    "FleetConnectError",
    "FleetConsumer",
    "FleetLease",
    "FleetSnapshot",
    "FleetView",
    "WorkerView",
    "load_secret",
    "send_command",
]
