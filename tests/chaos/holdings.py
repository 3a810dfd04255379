"""What a Redis queue or a SQLite broker file holds, read (and, for the faults,
written) with plain commands and SQL, not through ccdash: the checker does not
trust the code it checks."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, cast

import redis

GROUP = "ccdash"  # the consumer group ccdash reads every level stream with


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _id(eid: bytes | str) -> tuple[int, int]:
    """A stream entry id as a comparable pair (ms, seq)."""
    ms, _, seq = _text(eid).partition("-")
    return int(ms), int(seq or 0)


class RedisQueue:
    """One queue on a redis-server, read and written with plain commands (not through
    ccdash), so the checker does not trust the code it checks."""

    def __init__(self, port: int, queue: str) -> None:
        self.port = port
        self.queue = queue
        self.p = f"ccdash:{{{queue}}}:"

    def url(self, base: str) -> str:
        """`base` (redis://host:port/0) with this queue."""
        return f"{base}?queue={self.queue}"

    def client(self) -> redis.Redis:
        """A short-lived client (the server may have been restarted meanwhile)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def _streams(self, r: redis.Redis) -> list[str]:
        prios = [p.decode() for p in cast(list[bytes], r.zrange(self.p + "prios", 0, -1))]
        return [f"{self.p}q:{s}" for p in prios for s in (p, "r" + p)]

    def counters(self) -> dict[str, int]:
        """The queue's lifetime counters (published, acked, dead_lettered, ...)."""
        with self.client() as r:
            return {k.decode(): int(v) for k, v in r.hgetall(self.p + "counters").items()}

    def dead(self) -> list[dict[str, bytes]]:
        """Every entry of the dead-letter stream, its fields by name (`m` id, `r` reason)."""
        with self.client() as r:
            return [{k.decode(): v for k, v in f.items()} for _, f in r.xrange(self.p + "dead")]

    def dead_by_id(self) -> dict[str, str]:
        """Dead-lettered message id -> reason (entries without an id are skipped)."""
        return {
            f["m"].decode(errors="replace"): f.get("r", b"").decode(errors="replace")
            for f in self.dead()
            if "m" in f
        }

    def _held(self, r: redis.Redis, key: str) -> list[dict[bytes, bytes]]:
        """The fields of the entries of stream `key` that are still held: unread (after
        the group's last-delivered id) or pending. An acked entry may stay in its
        stream until a later ack trims it, and then it is held no more."""
        last = (-1, -1)
        try:
            for group in r.xinfo_groups(key):
                if _text(group["name"]) == GROUP:
                    last = _id(group["last-delivered-id"])
        except redis.ResponseError:  # no such stream
            return []
        pending = {_text(row["message_id"]) for row in self._pending_rows(r, key)}
        return [
            f
            for eid, f in cast(list[tuple[bytes, dict[bytes, bytes]]], r.xrange(key))
            if _id(eid) > last or _text(eid) in pending
        ]

    def _pending_rows(
        self, r: redis.Redis, key: str, worker: str | None = None
    ) -> list[dict[str, Any]]:
        try:
            return r.xpending_range(key, GROUP, "-", "+", 100_000, consumername=worker)
        except redis.ResponseError:  # no group on this stream yet
            return []

    def queued(self) -> set[str]:
        """Ids still held: unread or pending stream entries, returned and delayed ones."""
        out: set[str] = set()
        with self.client() as r:
            for key in self._streams(r):
                out.update(f[b"m"].decode() for f in self._held(r, key) if b"m" in f)
            for p in r.zrange(self.p + "prios", 0, -1):
                out.update(
                    m.decode().split("|", 1)[1]
                    for m in r.zrange(self.p + "ret:" + p.decode(), 0, -1)
                )
            out.update(m.decode() for m in r.zrange(self.p + "delayed", 0, -1))
        return out

    def pending(self, worker: str | None = None) -> set[str]:
        """Ids of the entries pending (leased, read) for `worker`, or for anyone."""
        out: set[str] = set()
        with self.client() as r:
            for key in self._streams(r):
                for row in self._pending_rows(r, key, worker):
                    eid = row["message_id"]
                    for _, f in r.xrange(key, eid, eid):
                        if b"m" in f:
                            out.add(f[b"m"].decode())
        return out

    def holds_nothing(self, worker: str) -> bool:
        """Is nothing pending for `worker` any more?"""
        return not self.pending(worker)

    def entries(self) -> int:
        """Entries still held in the level streams (unread or pending; acked ones that
        wait for a trim do not count)."""
        with self.client() as r:
            return sum(len(self._held(r, key)) for key in self._streams(r))

    def worker_alive(self, name: str) -> bool:
        """Is its presence key there (it beat within the heartbeat TTL)?"""
        with self.client() as r:
            return bool(r.exists(f"{self.p}w:{name}"))

    def inject(self, fields: dict[bytes, bytes], priority: int = 0) -> bytes:
        """XADD a raw entry to a priority's stream, as a foreign writer would."""
        with self.client() as r:
            return cast(bytes, r.xadd(f"{self.p}q:{priority}", fields))  # type: ignore[arg-type,unused-ignore]


class SqliteFile:
    """A SQLite broker file read and written with plain SQL (not through ccdash)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def dead_by_id(self) -> dict[str, str]:
        """Dead-lettered message id -> reason."""
        return {
            mid: reason or ""
            for mid, reason in self._rows("SELECT mid, reason FROM msgs WHERE state = 3")
        }

    def queued(self) -> set[str]:
        """Ids still held and not dead (ready, delayed, leased)."""
        return {mid for (mid,) in self._rows("SELECT mid FROM msgs WHERE state != 3")}

    def numbers(self) -> dict[str, int]:
        """Id -> body number of the rows still in the file (undecodable bodies skipped)."""
        out = {}
        for mid, body in self._rows("SELECT mid, body FROM msgs WHERE is_json = 1"):
            try:
                n = json.loads(body).get("n")
            except (ValueError, RecursionError, AttributeError):
                continue
            if isinstance(n, int):
                out[mid] = n
        return out

    def leased_by(self, pid: int) -> set[str]:
        """Ids leased to the broker instances of process `pid`."""
        return {
            mid
            for (mid,) in self._rows(
                "SELECT mid FROM msgs WHERE state = 2 AND owner IN "
                "(SELECT token FROM owners WHERE pid = ?)",
                pid,
            )
        }

    def leased(self) -> set[str]:
        """Ids leased to anyone."""
        return {mid for (mid,) in self._rows("SELECT mid FROM msgs WHERE state = 2")}

    def counters(self) -> dict[str, int]:
        """The file's counters row."""
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            cur = conn.execute("SELECT * FROM counters")
            names = [c[0] for c in cur.description]
            return dict(zip(names, cur.fetchone(), strict=True))
        finally:
            conn.close()

    def inject(self, mid: str, body: bytes, is_json: bool = True) -> None:
        """Insert a ready row the way a foreign or corrupting writer would (counters
        kept consistent, so only the body is wrong)."""
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            # Row ids come from the counters row, as the broker hands them out.
            conn.execute(
                "UPDATE counters SET seq = seq + 1, ready = ready + 1, "
                "published = published + 1, gen = gen + 1"
            )
            conn.execute(
                "INSERT INTO msgs (id, mid, priority, state, body, is_json, published) "
                "SELECT seq, ?, 0, 0, ?, ?, ? FROM counters",
                (mid, body, int(is_json), time.time()),
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
