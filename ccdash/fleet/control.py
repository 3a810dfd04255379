"""The control channel: signed commands to workers through Redis.

A command is canonical JSON {v, queue, worker, action, args, ts, nonce} plus an
HMAC-SHA256 over those exact bytes with a shared secret (CCDASH_CONTROL_SECRET,
or a file named by --control-secret-file / CCDASH_CONTROL_SECRET_FILE). It is
appended to the worker's command stream (`*` reaches every worker). A worker
refuses, and logs, a command that is unsigned, badly signed, older (or newer)
than MAX_AGE by Redis' clock, issued before the worker joined, or whose nonce
it has seen (kept in its memory as well as in Redis); it writes every
command it receives, accepted or refused, to the audit stream (and to its
audit file when it has one).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccdash.brokers.redis.keys import Keys
from ccdash.files import PrivateFileError, read_owner_only
from ccdash.secret_env import CONTROL_SECRET_ENV, env_value

ACTIONS = ("kill", "scale", "drain", "stop", "pause", "resume")
MAX_AGE = 30.0  # seconds a command stays valid (both directions, for clock skew)
SECRET_ENV = CONTROL_SECRET_ENV
SECRET_FILE_ENV = "CCDASH_CONTROL_SECRET_FILE"


class ControlError(Exception):
    """A control command could not be sent, or its secret is unusable."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What became of a command: status `accepted`, `refused` or `sent` (not awaited)."""

    status: str
    worker: str
    action: str
    nonce: str
    detail: str = ""


def load_secret(path: str | os.PathLike[str] | None = None) -> bytes | None:
    """The shared secret: from `path`, else $CCDASH_CONTROL_SECRET_FILE, else
    $CCDASH_CONTROL_SECRET; None when none is configured."""
    path = path or os.environ.get(SECRET_FILE_ENV)
    if path:
        p = Path(path)
        try:
            data = read_owner_only(p, f"the control secret file {str(p)!r}", SECRET_FILE_LIMIT)
        except PrivateFileError as exc:
            raise ControlError(str(exc)) from None
        data = data.strip()
        if not data:
            raise ControlError(f"control secret file {str(p)!r} is empty")
        return _long_enough(data, f"control secret file {str(p)!r}")
    value = env_value(SECRET_ENV) or ""  # taken out of os.environ for a run of ccdash
    return _long_enough(os.fsencode(value), f"${SECRET_ENV}") if value else None


SECRET_FILE_LIMIT = 4096  # bytes: a secret, never read whole if bigger
MIN_SECRET = 16  # bytes: a shorter one could be guessed offline from a signed command


def _long_enough(secret: bytes, where: str) -> bytes:
    if len(secret) < MIN_SECRET:
        raise ControlError(
            f"{where}: the control secret must be at least {MIN_SECRET} bytes "
            f"(it has {len(secret)}); e.g. `openssl rand -hex 16`"
        )
    return secret


def as_secret(secret: bytes | str) -> bytes:
    """A secret given as text or bytes, as bytes."""
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: bytes, raw: bytes) -> str:
    """HMAC-SHA256 of the command bytes, hex."""
    return hmac.new(secret, raw, hashlib.sha256).hexdigest()


def encode_command(
    queue: str, worker: str, action: str, args: dict[str, Any], ts: float, nonce: str | None = None
) -> bytes:
    """The canonical bytes of a command (what gets signed)."""
    if action not in ACTIONS:
        raise ControlError(f"unknown action {action!r}; choose one of: {', '.join(ACTIONS)}")
    body = {
        "v": 1,
        "queue": queue,
        "worker": worker,
        "action": action,
        "args": args,
        "ts": round(ts, 3),
        "nonce": nonce or secrets.token_hex(16),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Verdict:
    """A received command after checking: `command` set when accepted."""

    command: dict[str, Any] | None
    reason: str = ""


def verify(
    secret: bytes | None, raw: bytes, sig: bytes | None, *, worker: str, queue: str, now: float
) -> Verdict:
    """Check signature, addressee and age (the nonce is checked against Redis after)."""
    if not sig:
        return Verdict(None, "unsigned")
    if secret is None:
        return Verdict(None, "no control secret configured on this worker")
    expected = sign(secret, raw).encode()
    if not hmac.compare_digest(expected, sig):
        return Verdict(None, "bad signature")
    try:
        cmd = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        return Verdict(None, "malformed command")
    if not isinstance(cmd, dict) or not isinstance(cmd.get("args"), dict):
        return Verdict(None, "malformed command")
    if cmd.get("queue") != queue or cmd.get("worker") not in (worker, "*"):
        return Verdict(None, "addressed to another worker or queue")
    ts = cmd.get("ts")
    if not isinstance(ts, int | float) or abs(now - ts) > MAX_AGE:
        return Verdict(None, "stale")
    if not isinstance(cmd.get("nonce"), str) or cmd.get("action") not in ACTIONS:
        return Verdict(None, "malformed command")
    return Verdict(cmd)


async def redis_time(client: Any) -> float:
    """Redis' wall clock in seconds: one clock for every host."""
    sec, usec = await client.time()
    return float(sec) + float(usec) / 1e6


async def send_command(
    url: str,
    secret: bytes | str | None,
    worker: str,
    action: str,
    *,
    wait: float | None = 5.0,
    **args: Any,
) -> CommandResult:
    """Sign and send `action` to `worker` (`*`: all) on the queue `url` names; with
    `wait`, return what the worker made of it (from the audit stream)."""
    from ccdash.fleet.connect import connect

    client, keys = await connect(url)
    try:
        return await _send(client, keys, secret, worker, action, wait, args)
    finally:
        await client.aclose()


async def _send(
    client: Any,
    keys: Keys,
    secret: bytes | str | None,
    worker: str,
    action: str,
    wait: float | None,
    args: dict[str, Any],
) -> CommandResult:
    audit_from = await _last_id(client, keys.audit)
    raw = encode_command(keys.queue, worker, action, args, await redis_time(client))
    nonce = json.loads(raw)["nonce"]
    fields: dict[str, Any] = {"c": raw}
    if secret is not None:
        fields["s"] = sign(as_secret(secret), raw)
    await client.xadd(keys.control(worker), fields, maxlen=1000, approximate=True)
    if not wait:
        return CommandResult("sent", worker, action, nonce)
    return await wait_for_audit(client, keys, nonce, worker, action, audit_from, wait)


async def send_raw(url: str, worker: str, fields: dict[str, Any]) -> None:
    """Append raw fields to a worker's command stream (tests of refusals: replays,
    forgeries)."""
    from ccdash.fleet.connect import connect

    client, keys = await connect(url)
    try:
        await client.xadd(keys.control(worker), fields)
    finally:
        await client.aclose()


async def _last_id(client: Any, key: str) -> bytes:
    last = await client.xrevrange(key, count=1)
    return last[0][0] if last else b"0-0"


async def wait_for_audit(
    client: Any, keys: Keys, nonce: str, worker: str, action: str, after: bytes, wait: float
) -> CommandResult:
    """Block on the audit stream until the worker records this nonce; in slices of at
    most a second, well inside the client's socket timeout (one block of the whole
    wait outlasted it when no answer came: a Redis read timeout, not a result)."""
    import time

    deadline = time.monotonic() + wait
    last = after
    while (left := deadline - time.monotonic()) > 0:
        reply = await client.xread({keys.audit: last}, block=max(1, int(min(left, 1.0) * 1000)))
        for _key, entries in reply or ():
            for eid, f in entries:
                last = eid
                if f.get(b"nonce", b"").decode() == nonce:
                    return CommandResult(
                        f.get(b"status", b"").decode(),
                        f.get(b"worker", b"").decode() or worker,
                        action,
                        nonce,
                        f.get(b"detail", b"").decode(),
                    )
    return CommandResult("timeout", worker, action, nonce, f"no answer within {wait}s")
