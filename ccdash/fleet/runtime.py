"""A worker process of a fleet: N engine consumers on the shared Redis broker,
obeying signed control commands, stopping gracefully on SIGTERM.

Stopping (SIGTERM, SIGINT, `stop`): intake ends, handlers in progress get the
grace period (a second signal cuts it short: they are cancelled at once), whatever
this worker holds goes back to the queue with its attempt given back, queued acks
are flushed, and the worker leaves the group.
`drain` is the same without a time limit on the handlers in progress.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ccdash.aio import run_within, stop_signals
from ccdash.brokers.redis import RedisBroker
from ccdash.engine import BROKER_CLOSE_DEADLINE, Engine, EngineConfig, Event, EventKind
from ccdash.engine.config import MIN_HEARTBEAT
from ccdash.fleet.listener import ControlListener
from ccdash.record.session import RecordingSession
from ccdash.record.writer import Recorder
from ccdash.text import counted

log = logging.getLogger("ccdash.worker")

# What a worker writes to its own log (the rest is in --log-file / the recording).
_LOGGED = frozenset(
    {
        EventKind.CONSUMER_FAILED,
        EventKind.CONSUMER_REPLACED,
        EventKind.POOL_SCALED,
        EventKind.RESTART_LIMIT,
        EventKind.CONSUMPTION_PAUSED,
        EventKind.CONSUMPTION_RESUMED,
        EventKind.DEAD_LETTERED,
    }
)


class WorkerState(StrEnum):
    """Where a worker process is (its presence heartbeat says so to the fleet)."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"  # running, its engine paused by a `pause` command
    DRAINING = "draining"
    STOPPING = "stopping"


DRAIN_GRACE = 24 * 3600.0  # `drain` waits for handlers in progress, however long they take


@dataclass(slots=True)
class WorkerOptions:
    """Everything `ccdash worker` is told."""

    broker_url: str
    handler: Any
    concurrency: int = 4
    name: str | None = None
    prefetch: int = 1
    visibility_timeout: float = 30.0
    heartbeat_ttl: float = 3.0
    max_attempts: int = 5
    grace: float = 5.0
    secret: bytes | None = None
    audit_file: Path | None = None
    recorder: Recorder | None = None  # --record FILE: the worker's run, for ccdash replay


class WorkerRuntime:
    """Runs one worker until stopped; `run()` returns the exit status."""

    def __init__(self, opts: WorkerOptions) -> None:
        self.opts = opts
        vt = opts.visibility_timeout
        hb = max(MIN_HEARTBEAT, min(1.0, vt / 8))  # vt > --heartbeat-ttl >= 0.3
        config = EngineConfig(
            consumers=opts.concurrency,
            min_consumers=0,
            max_consumers=max(64, opts.concurrency),
            prefetch=opts.prefetch,
            visibility_timeout=vt,
            heartbeat_interval=hb,
            heartbeat_timeout=min(3 * hb, vt / 2),
            max_attempts=opts.max_attempts,
            shutdown_grace=opts.grace,
        )
        # The broker's settings come from the engine's, as when the engine makes its own
        # broker: one visibility timeout and attempt limit in this process.
        # Read ahead about what the consumers can hold: fair between workers, and a
        # round trip's worth of work for each.
        self.broker = RedisBroker.from_url(
            opts.broker_url,
            config.queue_config(random.Random()),
            worker=opts.name,
            ttl=opts.heartbeat_ttl,
            fetch=max(4, opts.concurrency * opts.prefetch),
        )
        self.engine = Engine(config, handler=opts.handler, broker=self.broker)
        self.engine.add_listener(self._log_event)
        self.broker.presence_info = self.presence_info
        self.state = WorkerState.STARTING
        self.listener = ControlListener(
            opts.broker_url, self.name, opts.secret, self.execute, audit_file=opts.audit_file
        )
        self._stop = asyncio.Event()
        self._drain = False
        self._signals = 0  # stop signals received: the second forces the stop

    @property
    def name(self) -> str:
        """This worker's name in the fleet."""
        return self.broker.worker

    async def run(self) -> int:
        """Serve until a stop; 0 when it stopped cleanly."""
        loop = asyncio.get_running_loop()
        stops = stop_signals()
        for sig in stops:
            loop.add_signal_handler(sig, self._on_signal, sig)
        loop.add_signal_handler(signal.SIGUSR1, self._log_tasks)  # "what is it stuck on?"
        control: asyncio.Task[None] | None = None
        await self.broker.open()
        try:
            # Listening before the fleet sees it: a command sent the moment it shows
            # up (a dashboard's kill) is behind the mark the listener starts from.
            await self.listener.start()
            await self.broker.presence.register()
            control = loop.create_task(self.listener.run(), name="ccdash-control")
            self.state = WorkerState.RUNNING
            log.info(
                "worker %s: %d consumers on %s", self.name, self.opts.concurrency, self.broker.url
            )
            recording = self._record()  # before the start: its events are recorded too
            async with self.engine:
                if recording is not None:
                    recording.start()
                await self._stop.wait()
                if self._drain:
                    await self._drain_now()
                self.state = WorkerState.STOPPING
            if recording is not None:  # its last frame while the broker is still open
                await recording.stop()
                recording.finish()
        finally:
            if self.opts.recorder is not None:
                self.opts.recorder.finish()  # closes the file if the run ended early
                if self.opts.recorder.error is not None:  # the run went on without it
                    log.error("--record: %s", self.opts.recorder.error)
            if control is not None:
                self.listener.stop()
                done, _ = await asyncio.wait([control], timeout=10.0)
                if not done:  # the socket timeout should have ended it long before
                    control.cancel()
            await self.listener.close()
            await run_within(
                self.engine.clock, self.broker.close(), BROKER_CLOSE_DEADLINE, "closing the broker"
            )
            for sig in (*stops, signal.SIGUSR1):
                loop.remove_signal_handler(sig)
        log.info("worker %s stopped", self.name)
        return 0

    def _record(self) -> RecordingSession | None:
        """A recording of the worker's engine, if asked for."""
        if self.opts.recorder is None:
            return None
        return RecordingSession(
            self.opts.recorder, self.engine, meta={"source": "worker", "title": self.name}
        )

    def _log_tasks(self) -> None:
        """SIGUSR1: log every task's stack (for a worker that seems stuck)."""
        import io

        for t in asyncio.all_tasks():
            buf = io.StringIO()
            t.print_stack(limit=8, file=buf)
            log.warning("TASK %s\n%s", t.get_name(), buf.getvalue())

    def request_stop(self, why: str, *, drain: bool = False) -> None:
        """Stop soon (graceful)."""
        if not self._stop.is_set():
            log.info("worker %s stopping (%s)", self.name, why)
        self._drain = self._drain or drain
        self._stop.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        """The first stop signal stops gracefully; the next one forces the stop."""
        self._signals += 1
        if self._signals == 1:
            self.request_stop(f"signal {sig.name}")
            log.info("worker %s: send %s again to stop at once", self.name, sig.name)
            return
        log.warning(
            "worker %s: %s again: forcing the stop (handlers in progress are cancelled, "
            "their messages handed back)",
            self.name,
            sig.name,
        )
        self.engine.cut_grace()
        self.request_stop(f"signal {sig.name}, forced")

    async def _drain_now(self) -> None:
        """No new work; hand the read-ahead back; then stop with no time limit on the
        handlers in progress (what consumers merely buffered goes back too)."""
        self.state = WorkerState.DRAINING
        await self.engine.pause()
        await self.broker.hand_back()
        await self.engine.stop(grace=DRAIN_GRACE)

    async def execute(self, cmd: dict[str, Any]) -> str:
        """Obey one verified command; returns what was done."""
        action, args = cmd["action"], cmd["args"]
        eng = self.engine
        if action == "kill":
            cid = str(args.get("consumer", ""))
            if cid not in eng.consumers:
                raise KeyError(f"no running consumer {cid!r} on {self.name}")
            released = await eng.kill_consumer(cid)
            return f"killed {cid}; {counted(released, 'lease')} released"
        if action == "scale":
            n = await eng.scale_to(int(args["n"]), source="control")
            return f"concurrency {n}"
        if action == "pause":
            await eng.pause()
            return "paused"
        if action == "resume":
            await eng.resume()
            return "resumed"
        self.request_stop(f"control command {action}", drain=action == "drain")
        return WorkerState.DRAINING if action == "drain" else WorkerState.STOPPING

    def presence_info(self) -> dict[str, Any]:
        """What the fleet sees of this worker (in its heartbeat)."""
        eng = self.engine
        snap = eng.snapshot(max_leases=50, max_dead=0)
        return {
            "state": WorkerState.PAUSED
            if eng.paused and self.state == WorkerState.RUNNING
            else self.state,
            "concurrency": eng.desired,
            "consumers": [
                {
                    "id": c.id,
                    "state": c.state,
                    "in_flight": c.in_flight,
                    "processed": c.processed,
                    "failed": c.failed,
                }
                for c in snap.consumers
                if c.ended_at is None
            ],
            "lease_list": [
                {
                    "message_id": li.message_id,
                    "consumer": li.consumer_id,
                    "attempt": li.attempt,
                    "expires_in": round(li.expires_in, 2),
                }
                for li in snap.leases
            ],
            "processed": sum(c.processed for c in snap.consumers),
            "failed": sum(c.failed for c in snap.consumers),
            "commands": {"accepted": self.listener.accepted, "refused": self.listener.refused},
        }

    def _log_event(self, ev: Event) -> None:
        if ev.kind in _LOGGED:
            log.info("%s", ev.message)
