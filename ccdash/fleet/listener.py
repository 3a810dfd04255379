"""The worker's side of the control channel: read, verify, obey, audit."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from ccdash.backoff import Backoff
from ccdash.brokers.base import storable_text
from ccdash.files import append_line
from ccdash.fleet.connect import connect
from ccdash.fleet.control import MAX_AGE, Verdict, redis_time, verify
from ccdash.text import sanitize

log = logging.getLogger("ccdash.control")

Execute = Callable[[dict[str, Any]], Awaitable[str]]
BLOCK_MS = 1000  # each read parks this long at most, so a stop takes effect within it
# A command stamped this little before the worker joined is still taken: its sender
# read Redis' clock just before this worker did, then appended it just after.
JOIN_SLACK = 1.0


class ControlListener:
    """Blocks on this worker's command streams (its own and `*`)."""

    def __init__(
        self,
        url: str,
        worker: str,
        secret: bytes | None,
        execute: Execute,
        *,
        audit_file: Path | None = None,
    ) -> None:
        self.url = url
        self.worker = worker
        self.secret = secret
        self.execute = execute
        self.audit_file = audit_file
        self.accepted = 0
        self.refused = 0
        self.client: Any = None
        self.keys: Any = None
        self._ids: dict[str, bytes] = {}
        self._stopping = False
        self.ready = asyncio.Event()
        self.joined_at = 0.0  # Redis time when this worker began listening
        # Nonces accepted, with when they stop mattering: kept here as well as in Redis,
        # so deleting the Redis keys does not re-open a replay.
        self.seen: dict[str, float] = {}

    async def start(self) -> None:
        """Connect and note where the streams end: commands from now on count."""
        self.client, self.keys = await connect(self.url)
        self.joined_at = await redis_time(self.client)
        for key in (self.keys.control(self.worker), self.keys.control("*")):
            last = await self.client.xrevrange(key, count=1)
            self._ids[key] = last[0][0] if last else b"0-0"
        if self.secret is None:
            log.warning("no control secret configured: every control command will be refused")
        self.ready.set()

    def stop(self) -> None:
        """End `run` after its current read (at most BLOCK_MS): a blocking read is not
        cancelled, since a cancelled one can leave the client waiting for good."""
        self._stopping = True

    async def run(self) -> None:
        """Read and handle commands until stopped (reconnecting with backoff)."""
        backoff = Backoff(cap=2.0)
        while not self._stopping:
            try:
                reply = await self.client.xread(self._ids, block=BLOCK_MS)
                backoff.reset()
            except (RedisError, OSError) as exc:
                log.warning("control channel: %s; retrying", type(exc).__name__)
                await asyncio.sleep(backoff.next_delay())
                continue
            for key, entries in reply or ():
                name = key.decode() if isinstance(key, bytes) else key
                for eid, fields in entries:
                    self._ids[name] = eid
                    try:
                        await self.handle(fields)
                    except (RedisError, OSError) as exc:
                        log.warning("control command not handled: %s", type(exc).__name__)
                    except Exception as exc:  # one bad entry never ends the channel
                        self.refused += 1
                        why = sanitize(f"{type(exc).__name__}: {exc}", 200)
                        log.warning("control entry %s not handled: %s", sanitize(eid, 40), why)

    async def close(self) -> None:
        """Disconnect."""
        if self.client is not None:
            await self.client.aclose()

    async def handle(self, fields: dict[bytes, bytes]) -> None:
        """Verify one command; obey it or refuse it; audit either way."""
        raw = fields.get(b"c", b"")
        now = await redis_time(self.client)
        verdict = verify(
            self.secret, raw, fields.get(b"s"), worker=self.worker, queue=self.keys.queue, now=now
        )
        cmd = verdict.command
        if cmd is not None:
            verdict = await self.check_fresh(cmd, now)
        if verdict.command is None:
            self.refused += 1
            summary = _summary(raw)
            log.warning("refused control command (%s): %s", verdict.reason, summary)
            await self.audit("refused", summary, verdict.reason)
            return
        assert cmd is not None
        try:
            detail = await self.execute(cmd)
            status = "accepted"
        except Exception as exc:  # report the failure to the sender
            detail, status = f"{type(exc).__name__}: {exc}", "failed"
        self.accepted += 1
        log.info("control command %s %s: %s (%s)", cmd["action"], cmd["args"], status, detail)
        await self.audit(status, cmd, detail)

    async def check_fresh(self, cmd: dict[str, Any], now: float) -> Verdict:
        """Refuse a replay: a command issued before this worker joined (it cannot have
        been meant for it: someone recorded and re-sent it), or a nonce already seen,
        by this process (memory) or by this worker name (Redis)."""
        if cmd["ts"] < self.joined_at - JOIN_SLACK:
            return Verdict(None, "issued before this worker joined")
        nonce = cmd["nonce"]
        for old, until in list(self.seen.items()):
            if until < now:
                del self.seen[old]
        if nonce in self.seen:
            return Verdict(None, "replayed")
        self.seen[nonce] = cmd["ts"] + 2 * MAX_AGE
        fresh = await self.client.set(
            self.keys.nonce(self.worker, nonce), 1, nx=True, ex=int(2 * MAX_AGE) + 1
        )
        return Verdict(cmd) if fresh else Verdict(None, "replayed")

    async def audit(self, status: str, cmd: dict[str, Any], detail: str) -> None:
        """Append one record to the audit stream (and the audit file)."""
        record = {
            "at": time.time(),
            "worker": self.worker,
            "status": status,
            "action": str(cmd.get("action", "")),
            "args": cmd.get("args", {}),
            "nonce": str(cmd.get("nonce", "")),
            "ts": cmd.get("ts", ""),
            "detail": detail,
        }
        await self.client.xadd(
            self.keys.audit,
            {k: (json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in record.items()},
            maxlen=10_000,
            approximate=True,
        )
        if self.audit_file is not None and status != "refused":
            append_line(self.audit_file, json.dumps(record, sort_keys=True) + "\n")


def _summary(raw: bytes) -> dict[str, Any]:
    """What a refused command claimed to be (never trusted, only reported)."""
    try:
        cmd = json.loads(raw)
    except (ValueError, RecursionError):
        return {"action": "?", "args": {}, "nonce": ""}
    if not isinstance(cmd, dict):
        return {"action": "?", "args": {}, "nonce": ""}
    ts = cmd.get("ts", "")
    return {
        "action": storable_text(cmd.get("action", "?"), 40),
        "args": {},
        "nonce": storable_text(cmd.get("nonce", ""), 64),
        "ts": ts if isinstance(ts, int | float) else storable_text(ts, 40),
    }
