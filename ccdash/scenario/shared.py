"""The loss checker on a shared broker: the workload's messages that another
worker of the fleet handled.

A Redis fleet's other workers run their own handlers, so the workload's Tap never
sees their completions. After the run, an id is counted as acked elsewhere when
the broker no longer holds it (no unacked stream entry, no delayed retry) and it
is not in the DLQ: on Redis a message leaves only by an ack or a purge.
As a cross-check, the fleet's acked counter must have grown by at least that
many during the run; ids beyond what it covers (Redis lost its state, say) are
counted as lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccdash.scenario.workload import Workload


async def settle_shared(workload: Workload, url: str, acked_before: int) -> int:
    """Mark the workload's ids that another worker acked; returns how many.
    `acked_before` is the fleet's acked counter when the run started."""
    from ccdash.fleet.settle import locate

    led = workload.ledger
    open_ids = [m for m in led.published if m not in led.done]
    if not open_ids:
        return 0
    where = await locate(url, open_ids)
    gone = {m for m in open_ids if m not in where.outstanding and m not in where.dead}
    # Our own acks are in the counter too: what is left of its growth is the others'.
    covered = max(0, where.acked_total - acked_before - len(led.done))
    led.record_elsewhere(gone, unconfirmed=max(0, len(gone) - covered))
    return len(gone)
