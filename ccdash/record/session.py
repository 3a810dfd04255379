"""A recorder attached to a run: the glue `--demo`, the dashboard and `ccdash worker` share.

    session = RecordingSession(recorder, engine, drills=lambda: workload.drill_results)
    frames = session.start()          # a frame every interval, until finish()
    await workload.run(on_event=session.tee(view.event))
    report = session.finish(workload.report())   # names the recording; written into it

Duck-typed on the engine (`snapshot`, `clock`, `add_listener`, `config`) and on
run events (`kind`, `message`, `source`, `fields`), so this package needs no
scenario or UI import.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ccdash.record.writer import Recorder

MAX_LEASES = 60  # what the dashboard shows, so a replay shows the same
MAX_DEAD = 200


def config_meta(config: Any) -> dict[str, Any]:
    """The engine settings a replayed dashboard shows, for the recording's header."""
    names = (
        "visibility_timeout",
        "heartbeat_timeout",
        "max_attempts",
        "min_consumers",
        "max_consumers",
        "consumers",
        "balancer",
        "prefetch",
    )
    return {
        n: getattr(config, n)
        for n in names
        if isinstance(getattr(config, n, None), int | float | str)
    }


class RecordingSession:
    """One run being recorded; see the module docstring."""

    def __init__(
        self,
        recorder: Recorder,
        engine: Any,
        *,
        drills: Callable[[], Sequence[Any]] | None = None,
        lost: Callable[[], int] | None = None,
        evidence: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """`drills`: the drill records now; `lost`: the loss checker's count now (both
        optional); `evidence`: the files to name in the report; `meta`: for the header."""
        self.recorder = recorder
        self.engine = engine
        self.drills = drills
        self.lost = lost
        self.evidence = dict(evidence or {})
        recorder.meta = {**config_meta(engine.config), **recorder.meta, **(meta or {})}
        engine.add_listener(recorder.on_event)
        self._task: asyncio.Future[None] | None = None

    def snapshot(self) -> Any:
        """The engine's state now, capped as the dashboard caps it."""
        return self.engine.snapshot(max_leases=MAX_LEASES, max_dead=MAX_DEAD)

    def start(self) -> asyncio.Future[None]:
        """Write a frame every interval of the engine's clock from now on."""
        self._task = asyncio.ensure_future(
            self.recorder.run(self.snapshot, self.engine.clock, self.drills, self.lost)
        )
        return self._task

    def tee(self, on_event: Callable[[Any], None] | None) -> Callable[[Any], None]:
        """`on_event`, also recording the run's own events (engine ones come direct)."""

        def both(ev: Any) -> None:
            self.run_event(ev)
            if on_event is not None:
                on_event(ev)

        return both

    def run_event(self, ev: Any) -> None:
        """Record a run event unless it is an engine event (recorded as it happened)."""
        if getattr(ev, "source", "") != "engine":
            self.recorder.workload_event(
                self.engine.clock.now(),
                str(ev.kind),
                str(ev.message),
                tuple(getattr(ev, "fields", ())),
            )

    async def stop(self) -> None:
        """Stop the frame ticker (the recording stays open for finish)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def finish(self, report: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The last frame, the report (with the evidence files named in it), the end."""
        if self._task is not None:
            self._task.cancel()
        if report is not None:
            report.update(self.evidence)
        lost = report.get("lost") if report is not None else None
        if lost is None and self.lost is not None:
            lost = self.lost()
        self.recorder.finish(
            self.snapshot(),
            report,
            self.drills() if self.drills is not None else None,
            lost if isinstance(lost, int) else None,
        )
        return report


__all__ = ["MAX_DEAD", "MAX_LEASES", "RecordingSession", "config_meta"]
