"""Where a Redis-backed queue keeps its state: one key layout, shared by the
broker, the worker runtime and the fleet view.

All keys of one queue share the hash tag `{queue}`, so they live in one slot.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "ccdash"  # the one consumer group every worker joins


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names of one queue (default queue name: `default`)."""

    queue: str = "default"

    @property
    def prefix(self) -> str:
        """Common prefix; the Lua scripts build their keys from it."""
        return f"ccdash:{{{self.queue}}}:"

    def stream(self, priority: int) -> str:
        """The stream of one priority level."""
        return f"{self.prefix}q:{priority}"

    def level_stream(self, suffix: bytes | str) -> str:
        """A stream by its suffix: `<prio>` (new entries) or `r<prio>` (returned ones)."""
        if isinstance(suffix, bytes):
            suffix = suffix.decode()
        return f"{self.prefix}q:{suffix}"

    def returned(self, priority: int) -> str:
        """ZSET of one level's returned messages waiting for a fetch (original order)."""
        return f"{self.prefix}ret:{priority}"

    def publish_mark(self, token: str) -> str:
        """What a dedup publish call stored (its ids, JSON), kept MARK_TTL: a call sent
        again after its reply was lost finds it."""
        return f"{self.prefix}pub:{token}"

    @property
    def rescan(self) -> str:
        """Held (with a TTL) by the worker looking for levels missing from the registry:
        one look per period across the fleet."""
        return self.prefix + "rescan"

    @property
    def wake(self) -> str:
        """Stream whose entries unpark readers blocked in XREADGROUP (a message came back)."""
        return self.prefix + "wake"

    @property
    def priorities(self) -> str:
        """ZSET of the priority levels in use (score = priority)."""
        return self.prefix + "prios"

    @property
    def dead(self) -> str:
        """The dead-letter stream."""
        return self.prefix + "dead"

    @property
    def dead_index(self) -> str:
        """HASH message id -> its entry in the dead stream."""
        return self.prefix + "deadidx"

    @property
    def delayed(self) -> str:
        """ZSET of messages waiting out a retry backoff (score = due, Redis ms)."""
        return self.prefix + "delayed"

    @property
    def counters(self) -> str:
        """HASH of fleet totals: published, acked, dead_lettered, redelivered."""
        return self.prefix + "counters"

    @property
    def workers(self) -> str:
        """ZSET of registered workers (score = registration time, Redis ms)."""
        return self.prefix + "workers"

    def presence(self, worker: str) -> str:
        """A worker's heartbeat: JSON, expires after the heartbeat TTL."""
        return f"{self.prefix}w:{worker}"

    def control(self, worker: str) -> str:
        """A worker's control-command stream (`*` for all workers)."""
        return f"{self.prefix}ctl:{worker}"

    def nonce(self, worker: str, nonce: str) -> str:
        """Marks a control command's nonce as used (replay protection)."""
        return f"{self.prefix}nonce:{worker}:{nonce}"

    @property
    def audit(self) -> str:
        """Stream of control commands received: accepted and refused."""
        return self.prefix + "audit"

    @property
    def config(self) -> str:
        """HASH of the queue settings the first worker used."""
        return self.prefix + "config"
